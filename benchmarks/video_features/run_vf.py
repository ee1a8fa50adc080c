"""Run v-iashin/video_features' main.py unchanged, with two things done first:

1. one CPU thread: torch.set_num_threads(1) (video_features has no thread option; the script
   that calls this also sets OMP_NUM_THREADS=MKL_NUM_THREADS=1 and pins the process to a core);
2. random-initialised weights: torchvision.models.get_model is wrapped so that any `weights=`
   argument becomes weights=None (no network here, so IMAGENET1K_V1 cannot be downloaded).
   ExtractResNet.load_model still takes its preprocessing from
   get_model_weights(name)['IMAGENET1K_V1'].transforms(), which is metadata only (no download):
   Resize(256, bilinear, antialias) -> CenterCrop(224) -> ToTensor -> Normalize(ImageNet).

Run it from the video_features checkout (main.py reads ./configs/<feature_type>.yml), with
main.py's own omegaconf CLI arguments, e.g.
    python run_vf.py feature_type=resnet model_name=resnet152 device=cpu \
        extraction_fps=5 batch_size=1 on_extraction=save_numpy output_path=... tmp_path=... \
        file_with_video_paths=list.txt
"""
import os
import sys

import torch
import torchvision.models

torch.set_num_threads(int(os.environ.get("VF_TORCH_THREADS", "1")))

_get_model = torchvision.models.get_model


def _random_init_get_model(name, **config):
    if config.get("weights") is not None:
        print(f"[run_vf] {name}: weights={config['weights']!r} -> None (random init, no download)",
              file=sys.stderr)
        config["weights"] = None
    return _get_model(name, **config)


# extract_resnet does `import torchvision.models as models` and calls models.get_model
torchvision.models.get_model = _random_init_get_model

sys.path.insert(0, os.getcwd())
import main as vf_main  # noqa: E402  (video_features/main.py)
from omegaconf import OmegaConf  # noqa: E402

if __name__ == "__main__":
    print(f"[run_vf] torch {torch.__version__}, threads {torch.get_num_threads()}", file=sys.stderr)
    vf_main.main(OmegaConf.from_cli())
