import torch

from synthkit.models.diffusion import CPU_CHUNK, CPU_CHUNK_MAX_VOXELS, cpu_chunk, fixed_batch_on_cpu


def test_the_chunk_depends_on_the_sample_size_only():
    assert cpu_chunk((16, 16, 16)) == CPU_CHUNK
    assert cpu_chunk((160, 224, 160)) == 1  # a 1 mm brain: one at a time
    assert cpu_chunk((CPU_CHUNK_MAX_VOXELS, 1, 1)) == CPU_CHUNK
    assert cpu_chunk((CPU_CHUNK_MAX_VOXELS + 1, 1, 1)) == 1


def test_fixed_chunks_pad_and_trim_and_pass_conditions_along():
    seen = []

    def fn(x, c):
        seen.append(x.shape[0])
        return x * 2 + c[:, :, None]

    x = torch.arange(5.0).view(5, 1, 1)
    c = torch.arange(5.0).view(5, 1) * 10
    for chunk in (1, 4):
        seen.clear()
        out = fixed_batch_on_cpu(fn, x, c, chunk=chunk)
        torch.testing.assert_close(out, x * 2 + c[:, :, None])
        assert set(seen) == {chunk}  # every call gets exactly `chunk` samples, the last one padded
