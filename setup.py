"""dama_det: DAMA self-supervised pretraining + Detectron2 Mask R-CNN for cell instance
segmentation in multiplexed immunofluorescence images."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="dama_det",
    version="0.1.0",
    description="DAMA pretraining and Detectron2 cell instance segmentation for "
    "multiplexed immunofluorescence images",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The repository's configs/ is installed as dama_det/configs (found by name there).
    packages=find_packages(include=["dama_det", "dama_det.*"]) + ["dama_det.configs"],
    package_dir={"dama_det.configs": "configs"},
    package_data={"dama_det.configs": ["*.yaml", "*/*.yaml"]},
    install_requires=[
        # torch/torchvision are installed first by the Makefile (TORCH=...), so that a
        # GPU user can pick the CUDA build; any recent release works.
        "torch>=2.1",
        "torchvision>=0.16",
        "numpy>=1.24",
        "scipy>=1.10",
        "tifffile>=2023.1",
        "scikit-image>=0.21",
        "opencv-python-headless>=4.8",
        "pycocotools>=2.0.7",
        "faster-coco-eval>=1.6",
        "timm>=0.9",
        "fvcore>=0.1.5,<0.1.6",
        "iopath>=0.1.7,<0.1.10",
        "pyyaml>=6",
        "tqdm>=4.60",
        "tensorboard>=2.12",
        "matplotlib>=3.7",
        "Pillow>=9",
    ],
    extras_require={
        "dev": ["pytest>=7", "pytest-timeout>=2.1", "ruff>=0.4"],
        "slurm": ["submitit>=1.4"],
        "napari": ["napari>=0.4.18"],
    },
    entry_points={"console_scripts": ["dama-det=dama_det.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
