from glob import glob

from setuptools import find_packages, setup

PACKAGE = "ttt_perception"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["models/*.pt", "profiles/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml") + glob(f"{PACKAGE}/profiles/*.yaml")),
    ],
    python_requires=">=3.10",
    install_requires=["setuptools", "numpy", "pyyaml", "tqdm"],
    zip_safe=False,
    maintainer="ttt_perception maintainers",
    maintainer_email="maintainers@ttt-perception.invalid",
    description="Test-time training perception node for ROS 2",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "ttt_perception_node = ttt_perception.ros.node:main",
            "ttt-perception = ttt_perception.cli:main",
        ],
    },
)
