"""Preprocessing per weight file: the ImageNet CNNs follow torchvision's own transform of the file
(V2 ResNets 232 → 224, V1 256 → 224), unknown files keep the default and the config overrides,
the store records the transform; Caffe-style GoogLeNets (Places205) fail naming the file; the
decoder's aspect-keeping "fit" resize."""

import av
import numpy as np
import pytest
import torch
import torchvision

from vlpipe.decode import FIT, DecodedMedia, FrameSpec, decode_clip, decode_media
from vlpipe.extractors import build_extractor

pytestmark = pytest.mark.usefixtures("single_thread")


def _write_video(path, image: np.ndarray, frames: int = 3) -> None:
    height, width = image.shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"qp": "0"}
        for _ in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


@pytest.mark.parametrize(("kind", "resize"), [("resnet152", 232), ("resnet50", 232),
                                              ("resnet34", 256), ("googlenet", 256)])
def test_default_weights_follow_torchvision_transform(kind, resize):
    """The backbones' default files: ImageNet-1K V2 ResNets evaluate at 232 → 224, V1 files at
    256 → 224 (a random init stands in for its file); the store's provenance says so."""
    extractor = build_extractor(kind, {"fps": 5, "allow_random_init": True})
    assert extractor.needs == FrameSpec(5, resize, True)  # decoded: shorter side, centre square
    transform = extractor.provenance()["transform"]
    assert (transform["mode"], transform["resize"], transform["crop"], transform["channels"]) \
        == ("centre-crop", resize, 224, "RGB")
    assert transform["mean"] == [0.485, 0.456, 0.406] and transform["std"] == [0.229, 0.224, 0.225]
    assert transform["source"].startswith("torchvision ") and "random init" in transform["source"]
    frames = np.zeros((2, resize, resize, 3), np.uint8)
    units = extractor.prepare(DecodedMedia(frames={extractor.needs: (frames, np.arange(2.0))}))
    assert units.inputs.shape == (2, 224, 224, 3)
    assert extractor.outputs["pool5"].shape[0] in (512, 1024, 2048)


def test_a_torchvision_file_gets_its_own_transform(tmp_path):
    """A weights_path named as torchvision names a file maps to that file's entry: ResNet-50's
    V1 file (resnet50-0676ba61.pth) evaluates at 256, not the default V2 file's 232."""
    torch.manual_seed(0)
    path = tmp_path / torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    torch.save(torchvision.models.resnet50(weights=None).half().state_dict(), path)
    extractor = build_extractor("resnet50", {"weights_path": str(path)})
    assert extractor.needs.size == 256
    assert extractor.provenance()["transform"]["source"] == \
        "torchvision ResNet50_Weights.IMAGENET1K_V1"


def test_centre_crop_drops_what_the_resize_margin_drops(tmp_path):
    """A 464×464 video with a bright 4 px border: 232 → 224 (V2) crops the border (2 px at 232)
    away; resizing straight to 224 (the old default) kept it at the edges."""
    image = np.full((464, 464, 3), 30, np.uint8)
    image[:4], image[-4:], image[:, :4], image[:, -4:] = 230, 230, 230, 230
    _write_video(tmp_path / "border.mp4", image)
    extractor = build_extractor("resnet152", {"fps": 5, "allow_random_init": True})
    units = extractor.prepare(decode_media(str(tmp_path / "border.mp4"), [extractor.needs]))
    frames = units.inputs.numpy().astype(float)
    assert frames.shape[1:] == (224, 224, 3)
    edges = [frames[:, 0], frames[:, -1], frames[:, :, 0], frames[:, :, -1]]
    assert max(edge.mean() for edge in edges) < 60  # the border is gone
    straight = decode_clip(str(tmp_path / "border.mp4"), FrameSpec(5, 224))[0].astype(float)
    assert straight[:, 0].mean() > 100  # what the old default fed the network


def test_unknown_file_keeps_the_default_and_the_config_overrides(tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "my-resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).half().state_dict(), path)
    default = build_extractor("resnet34", {"image_size": 32, "weights_path": str(path)})
    assert default.needs == FrameSpec(5, 32, True)  # shorter side straight to the crop
    record = default.provenance()["transform"]
    assert (record["resize"], record["crop"]) == (32, 32) and "not a torchvision" in \
        record["source"]
    custom = build_extractor("resnet34", {"image_size": 32, "resize": 40,
                                          "weights_path": str(path)})
    assert custom.needs == FrameSpec(5, 40, True)
    assert custom.provenance()["transform"]["resize"] == 40
    frames = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    units = custom.prepare(DecodedMedia(frames={custom.needs: (frames, np.arange(2.0))}))
    np.testing.assert_array_equal(units.inputs.numpy(), frames[:, 4:36, 4:36])
    # a crop of another size keeps the weights' ratio; crop: false squashes, no resize
    assert build_extractor("resnet152", {"image_size": 448,
                                         "allow_random_init": True}).needs.size == 464
    squash = build_extractor("googlenet", {"image_size": 227, "crop": False,
                                           "allow_random_init": True})
    assert squash.needs == FrameSpec(5, 227, False)
    assert squash.provenance()["transform"]["mode"] == "squash"
    with pytest.raises(ValueError, match="needs crop: true"):
        build_extractor("googlenet", {"crop": False, "resize": 256, "allow_random_init": True})
    with pytest.raises(ValueError, match="at least the crop"):
        build_extractor("resnet34", {"resize": 200, "allow_random_init": True})


def test_caffe_googlenet_fails_naming_the_file(tmp_path):
    """A GoogLeNet-Places205 converted from Caffe (its layer names, LRN, no BatchNorm) does not
    load: an error naming the file and saying what loads instead."""
    caffe = {"conv1/7x7_s2.weight": torch.zeros(64, 3, 7, 7),
             "conv1/7x7_s2.bias": torch.zeros(64),
             "conv2/3x3.weight": torch.zeros(192, 64, 3, 3),
             "inception_3a/1x1.weight": torch.zeros(64, 192, 1, 1),
             "loss3/classifier.weight": torch.zeros(205, 1024)}
    path = tmp_path / "googlenet_places205.pth"
    torch.save(caffe, path)
    with pytest.raises(ValueError, match=r"googlenet_places205\.pth.*not a torchvision"
                                         r".*Caffe.*not supported.*torchvision state dicts"):
        build_extractor("googlenet", {"weights_path": str(path)})


def test_training_checkpoints_and_data_parallel_prefixes_load(tmp_path):
    """A torchvision-layout GoogLeNet trained on Places (365 classes) saved as a training
    checkpoint ({"state_dict": ...} with DataParallel's "module." prefix) loads."""
    torch.manual_seed(2)
    source = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True,
                                          num_classes=365).state_dict()
    path = tmp_path / "googlenet_places365.pth.tar"
    torch.save({"epoch": 90, "arch": "googlenet",
                "state_dict": {f"module.{k}": v for k, v in source.items()}}, path)
    extractor = build_extractor("googlenet", {"image_size": 64, "weights_path": str(path)})
    loaded = extractor.net.state_dict()
    key = next(k for k in loaded if k.endswith("inception5b.branch1.conv.weight"))
    torch.testing.assert_close(loaded[key], source["inception5b.branch1.conv.weight"])


def test_fit_keeps_the_aspect_ratio(tmp_path):
    """FrameSpec crop "fit": the whole frame, the longer side to the size, aspect kept."""
    image = np.full((64, 128, 3), 40, np.uint8)
    image[:, :64] = 200  # the left half bright
    _write_video(tmp_path / "wide.mp4", image)
    frames, _ = decode_clip(str(tmp_path / "wide.mp4"), FrameSpec(10, 32, FIT))
    assert frames.shape == (3, 16, 32, 3)
    assert frames[:, :, :14].min() > 150 and frames[:, :, 18:].max() < 90
    odd, _ = decode_clip(str(tmp_path / "wide.mp4"), FrameSpec(10, 33, FIT))
    assert odd.shape[1:] == (16, 33, 3)  # 16.5 rounds to even, as ultralytics rounds
