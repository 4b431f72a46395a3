from synthkit.progress import track


def test_off_a_terminal_plain_lines_show_progress(capsys):
    assert list(track(range(3), description="preprocessing 3 images", every_seconds=0)) == [0, 1, 2]
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(",")[0] for ln in lines] == [f"preprocessing 3 images: {i}/3" for i in (1, 2, 3)]
    assert "ETA" in lines[0]


def test_a_fast_loop_prints_one_line_at_the_end(capsys):
    assert sum(track(iter(range(100)), description="checking images", total=100)) == 4950
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("checking images: 100/100")


def test_an_unsized_loop_counts_without_a_total(capsys):
    list(track((i for i in range(2)), description="segmenting", every_seconds=0))
    assert capsys.readouterr().out.splitlines()[-1].startswith("segmenting: 2, ")
