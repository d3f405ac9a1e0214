"""paddle_cls: the classic Paddle/nndl image-classification tutorials as an installable toolkit."""
from setuptools import find_packages, setup

setup(
    name="paddle_cls",
    version="0.1.0",
    description="PaddlePaddle image classification toolkit faithful to the nndl course tutorials",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["paddle_cls", "paddle_cls.*"]),
    python_requires=">=3.8",
    install_requires=["numpy", "Pillow", "matplotlib", "pyyaml", "visualdl", "tqdm"],
    extras_require={
        "cpu": ["paddlepaddle>=2.6"],
        "gpu": ["paddlepaddle-gpu>=2.6"],
        "test": ["pytest", "nbclient", "nbformat", "ipykernel", "scikit-learn"],
    },
)
