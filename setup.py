"""pip install of the ROS-free core (``engram_ros.core``) for offline tools and notebooks.

The ROS package itself is built by colcon from package.xml / CMakeLists.txt (ament_cmake):
rosidl generates the msg/srv modules there. This file is not used by that build.
"""

from setuptools import find_packages
from setuptools import setup

setup(
    name='engram_ros',
    version='0.1.0',
    description='Long-term engram memory for robots: the ROS-free core',
    # The core and every package under it (model, index, storage, memory).
    packages=find_packages(include=['engram_ros', 'engram_ros.core', 'engram_ros.core.*']),
    package_data={'engram_ros': ['py.typed']},
    python_requires='>=3.10',
    install_requires=['numpy>=1.24', 'faiss-cpu>=1.8', 'transforms3d>=0.4'],
    # The Milvus fleet backend (engram_ros.core.backends.milvus): pip install .[fleet]
    extras_require={'fleet': ['pymilvus>=3.0', 'milvus-lite>=3.2']},
    license='Apache-2.0',
)
