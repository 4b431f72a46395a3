import os
import pickle

import numpy as np
import pytest
import torch

from synthkit.errors import CheckpointError
from synthkit.metrics.features import MedicalNetResNet, load_medicalnet, medicalnet_normalise, random_features


@pytest.mark.parametrize(("depth", "dim"), [(10, 512), (18, 512), (34, 512), (50, 2048)])
def test_architectures_give_pooled_layer4_features(depth, dim):
    net = MedicalNetResNet(depth).eval()
    with torch.inference_mode():
        f = net(torch.rand(2, 1, 24, 24, 24))
    assert f.shape == (2, dim)


def test_loader_accepts_the_official_key_format(tmp_path):
    torch.manual_seed(3)
    net = MedicalNetResNet(10).eval()
    official = {"module." + k: v for k, v in net.state_dict().items()}
    official["module.conv_seg.0.weight"] = torch.zeros(512, 32, 2, 2, 2)  # the segmentation head is ignored
    path = tmp_path / "resnet_10_23dataset.pth"
    torch.save({"state_dict": official}, path)
    ext = load_medicalnet(path)
    assert ext.name == "medicalnet-resnet10" and len(ext.weights_sha256) == 64
    x = np.random.default_rng(0).random((2, 24, 24, 24)).astype(np.float32)
    with torch.inference_mode():
        expected = net(medicalnet_normalise(torch.as_tensor(x)[:, None])).double().numpy()
    assert np.allclose(ext.features(x), expected, atol=1e-6)
    bare = tmp_path / "resnet_10_bare.pth"
    torch.save(net.state_dict(), bare)
    assert load_medicalnet(bare).features(x).shape == (2, 512)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_loader_refuses_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_medicalnet(tmp_path / "resnet_10.pth")
    evil = tmp_path / "resnet_10_evil.pth"
    evil.write_bytes(pickle.dumps({"state_dict": Evil()}))
    with pytest.raises(CheckpointError, match="not a loadable weights file|refused"):
        load_medicalnet(evil)
    zipped = tmp_path / "resnet_10_zipped.pth"
    torch.save({"state_dict": Evil()}, zipped)  # torch's own format with code inside
    with pytest.raises(CheckpointError, match="refused") as e:
        load_medicalnet(zipped)
    assert "weights_only" not in str(e.value) and "False" not in str(e.value)
    wrong = tmp_path / "resnet_50_wrong.pth"
    torch.save({"state_dict": MedicalNetResNet(10).state_dict()}, wrong)
    with pytest.raises(CheckpointError, match="do not fit MedicalNet ResNet-50"):
        load_medicalnet(wrong)
    with pytest.raises(CheckpointError, match="depth"):
        torch.save({}, tmp_path / "weights.pth")
        load_medicalnet(tmp_path / "weights.pth")


def test_fallback_is_named_and_reproducible():
    a, b = random_features(0), random_features(0)
    assert a.name == "random-features-resnet10-seed0" and a.weights_sha256 is None
    x = np.random.default_rng(0).random((2, 24, 24, 24)).astype(np.float32)
    assert np.array_equal(a.features(x), b.features(x))
    assert a.identity != random_features(1).identity
