"""tfdgm: deep generative models with TensorFlow, Keras 3 and TensorFlow Probability."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
REQUIREMENTS = [line.split("#")[0].strip()
                for line in (HERE / "requirements.txt").read_text().splitlines()
                if line.split("#")[0].strip()]

setup(
    name="tfdgm",
    version="0.1.0",
    description="Deep generative models (VAEs, flows, GANs, RBMs) in TensorFlow / Keras / TFP",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfdgm", "tfdgm.*"]),
    python_requires=">=3.10",
    install_requires=REQUIREMENTS,
    extras_require={"test": ["pytest>=8", "pytest-xdist"]},
    entry_points={"console_scripts": ["tfdgm=tfdgm.__main__:main"]},
)
