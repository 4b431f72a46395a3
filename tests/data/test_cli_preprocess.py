import nibabel as nib
import numpy as np
import pandas as pd

from synthkit.cli import main


def test_head_phantom_then_preprocess_with_a_qc_montage(tmp_path, capsys):
    assert main(["phantom", str(tmp_path / "heads"), "--head", "--n", "1", "--spacing", "8"]) == 0
    m = pd.read_csv(tmp_path / "heads" / "manifest.csv")
    assert len(m) == 6 and set(m["site"]) == {0, 1} and {"brain_mask", "age", "sex"} <= set(m.columns)
    img = nib.load(tmp_path / "heads" / m["image"].iloc[0])
    assert img.get_data_dtype() == np.int16 and int(img.header["sform_code"]) == 1
    assert main(["manifest", "validate", str(tmp_path / "heads" / "manifest.csv")]) == 0
    capsys.readouterr()

    code = main(["preprocess", str(tmp_path / "heads" / "manifest.csv"), "--out", str(tmp_path / "pp"), "--spacing", "8"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "register 6" in out and (tmp_path / "pp" / "qc.png").stat().st_size > 10_000
    assert "preprocessing 6 images: 6/6" in out  # progress off a terminal (a log file) too
    pp = pd.read_csv(tmp_path / "pp" / "manifest.csv")
    assert len(pp) == 6 and "brain_mask" in pp.columns
    first = nib.load(tmp_path / "pp" / pp["image"].iloc[0])
    assert first.shape == (20, 28, 20) and int(first.header["sform_code"]) == 4
    assert len(list((tmp_path / "pp" / "masks").glob("*_brainmask.nii.gz"))) == 6
    assert main(["manifest", "validate", str(tmp_path / "pp" / "manifest.csv")]) == 0


def test_manifest_build_codes_sex_and_says_so(tmp_path, capsys, phantom_cohort):
    import shutil

    (tmp_path / "scans").mkdir()
    for i, f in enumerate(sorted((phantom_cohort.parent / "images").glob("*.nii.gz"))[:3]):
        shutil.copy(f, tmp_path / "scans" / f"sub{i}.nii.gz")
    pd.DataFrame({"ID": ["sub0", "sub1", "sub2"], "Sex": ["M", "F", "f"], "Age": [40.5, 61, 77]}).to_csv(
        tmp_path / "cov.csv", index=False
    )
    code = main(["manifest", "build", str(tmp_path / "scans"), "--pattern", "*.nii.gz", "--covariates",
                 str(tmp_path / "cov.csv"), "--id-column", "ID", "-o", str(tmp_path / "m.csv")])
    out = capsys.readouterr().out
    assert code == 0
    assert "coded Sex: f → 0, m → 1 (1 = male, 0 = female)" in out
    t = pd.read_csv(tmp_path / "m.csv")
    assert t["Sex"].tolist() == [1, 0, 0] and t["Age"].tolist() == [40.5, 61, 77]
    assert main(["manifest", "validate", str(tmp_path / "m.csv")]) == 0


def test_preprocess_takes_the_space_and_settings_from_a_recipe(tmp_path, capsys, phantom_cohort):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"kind: ddpm\nspace: {{shape: [16, 24, 16], spacing: 10}}\n"
        f"data: {{manifest: {phantom_cohort}, preprocess: {{mode: resample}}}}\n"
        "unet: {channels: [16, 32], attention_levels: [false, false], norm_num_groups: 8}\n"
    )
    assert main(["preprocess", str(phantom_cohort), "--out", str(tmp_path / "pp"), "--recipe", str(recipe)]) == 0
    out = capsys.readouterr().out
    assert "16×24×16 at 10×10×10 mm (mode resample)" in out and "resample 12" in out
    assert nib.load(next((tmp_path / "pp" / "images").glob("*.nii.gz"))).shape == (16, 24, 16)


def test_preprocess_lists_rows_that_are_not_heads_and_writes_the_others(tmp_path, capsys, phantom_cohort):
    from synthkit.data.io import save_nifti

    good = pd.read_csv(phantom_cohort).iloc[:1]
    good = good.assign(image=[str(phantom_cohort.parent / p) for p in good["image"]]).drop(columns="label")
    save_nifti(np.ones((30, 30, 30), np.float32), np.diag([4.0, 4, 4, 1]), tmp_path / "const.nii.gz")
    save_nifti(np.zeros((30, 30, 30), np.float32), np.diag([4.0, 4, 4, 1]), tmp_path / "zeros.nii.gz")
    bad = pd.DataFrame({"subject_id": ["const", "zeros"], "image": [str(tmp_path / "const.nii.gz"),
                                                                     str(tmp_path / "zeros.nii.gz")]})
    pd.concat([bad, good], ignore_index=True).to_csv(tmp_path / "m.csv", index=False)
    code = main(["preprocess", str(tmp_path / "m.csv"), "--out", str(tmp_path / "pp"), "--spacing", "8"])
    out = capsys.readouterr()
    assert code == 1 and "Traceback" not in out.out + out.err
    assert "failed: row 1 (const)" in out.err and "constant" in out.err and "failed: row 2 (zeros)" in out.err
    assert "2 row(s) failed" in out.err
    assert len(pd.read_csv(tmp_path / "pp" / "manifest.csv")) == 1 and (tmp_path / "pp" / "qc.png").exists()
