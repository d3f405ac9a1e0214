"""paddle_cls: the classic Paddle/nndl image-classification tutorials as an installable toolkit."""
from setuptools import find_packages, setup

setup(
    name="paddle_cls",
    version="0.1.0",
    description="PaddlePaddle image classification toolkit faithful to the nndl course tutorials",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # The shipped configs live in configs/ of the clone and install as paddle_cls/configs/ (`-c resnet18`).
    packages=find_packages(include=["paddle_cls", "paddle_cls.*"]) + ["paddle_cls.configs"],
    package_dir={"paddle_cls.configs": "configs"},
    package_data={"paddle_cls.configs": ["*.yml"], "paddle_cls.serving": ["page.html"],
                  "paddle_cls.deploy": ["report.html.j2"]},
    python_requires=">=3.8",
    # Jinja2: eval's report.html (its template escapes class names, whatever their script)
    install_requires=["numpy", "Pillow", "matplotlib", "pyyaml", "visualdl", "tqdm", "Jinja2"],
    entry_points={"console_scripts": ["paddle-cls = paddle_cls.cli:main"]},
    extras_require={
        "cpu": ["paddlepaddle>=2.6"],
        # paddlepaddle-gpu on PyPI is 2.6, which crashes under NumPy 2 when paddle is imported before numpy.random
        "gpu": ["paddlepaddle-gpu>=2.6", "numpy<2"],
        "onnx": ["paddle2onnx>=2.1", "onnxruntime"],  # export --onnx and the onnxruntime engine (Paddle 3)
        # paddle-cls serve; uvicorn takes httptools' C HTTP parser and uvloop's event loop when they are installed
        # (2-3 % more images/s at 32 clients, measured)
        "serve": ["fastapi", "uvicorn", "httptools", "uvloop; sys_platform != 'win32'"],
        # ruff: the house style of pyproject.toml, checked in CI (pinned to a minor version: new ones add rules)
        "test": ["pytest", "nbclient", "nbformat", "ipykernel", "scikit-learn", "requests", "selenium",
                 "ruff>=0.17,<0.18"],
    },
)
