"""The stand-in interface packages in shims/ are the real tf2_msgs and vision_msgs on the wire.

Where ROS 2 comes from the package index there is no tf2_msgs or vision_msgs; tools/setup.sh
then builds the packages of the same name from shims/ (only those not installed). Their topics
only talk to a real robot's if the definitions are the upstream ones, so
``test/fixtures/shims/upstream.json`` keeps, for each type, the upstream text and the RIHS01 type
hash that rosidl computed for the released package (Kilted/Jazzy, read from generated code of
the released packages). The hash covers every field and nested type, so it is the check that
matters; the text check keeps the comments a user reads with ``ros2 interface show``.

Whichever package is in use (a distro's or the stand-in), its generated type description must
carry the upstream hash.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIMS = ROOT / 'shims'
UPSTREAM = json.loads((ROOT / 'test' / 'fixtures' / 'shims' / 'upstream.json').read_text())


def definition(text: str) -> list[str]:
    """Field and constant lines without comments or spacing (what the wire format depends on)."""
    lines = []
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            lines.append(' '.join(line.split()))
    return lines


def shim_file(name: str) -> Path:
    package, kind, type_name = name.split('/')
    return SHIMS / package / kind / f'{type_name}.{kind}'


def prefix_in_use(package: str) -> Path:
    """The ament prefix a node gets ``package`` from (the first on AMENT_PREFIX_PATH)."""
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        marker = Path(prefix) / 'share' / 'ament_index' / 'resource_index' / 'packages' / package
        if prefix and marker.exists():
            return Path(prefix)
    pytest.fail(f'{package} is not installed: run ./tools/setup.sh and source tools/env.sh')


def test_every_shim_interface_has_an_upstream_fixture() -> None:
    present = sorted(f'{p.parent.parent.name}/{p.parent.name}/{p.stem}'
                     for p in [*SHIMS.glob('*/msg/*.msg'), *SHIMS.glob('*/srv/*.srv')])
    assert present == sorted(UPSTREAM)


@pytest.mark.parametrize('name', sorted(UPSTREAM))
def test_shim_text_is_upstream(name: str) -> None:
    text = shim_file(name).read_text()
    expected = UPSTREAM[name]
    assert definition(text) == definition(expected['text'])
    if expected['text_exact']:
        assert text == expected['text']


@pytest.mark.parametrize('name', sorted(n for n in UPSTREAM if UPSTREAM[n]['rihs01']))
def test_installed_type_hash_is_upstream(name: str) -> None:
    package, kind, type_name = name.split('/')
    described = prefix_in_use(package) / 'share' / package / kind / f'{type_name}.json'
    hashes = json.loads(described.read_text())['type_hashes']
    assert hashes[0]['type_name'] == name
    assert hashes[0]['hash_string'] == UPSTREAM[name]['rihs01']


@pytest.mark.parametrize('name', sorted(UPSTREAM))
def test_installed_definition_matches_shim(name: str) -> None:
    """A distro's package has the shim's fields; a stand-in install is the current shims/."""
    package, kind, type_name = name.split('/')
    installed = prefix_in_use(package) / 'share' / package / kind / f'{type_name}.{kind}'
    if not installed.exists():
        pytest.skip(f'{name} is not in the installed {package} (a subset stand-in or older)')
    text = installed.read_text()
    assert definition(text) == definition(shim_file(name).read_text())
    if os.environ.get('ENGRAM_SHIMS') and str(installed).startswith(os.environ['ENGRAM_SHIMS']):
        assert text == shim_file(name).read_text(), 'stale stand-in: run ./tools/setup.sh'


def test_messages_import_and_round_trip() -> None:
    from geometry_msgs.msg import TransformStamped
    from rclpy.serialization import deserialize_message
    from rclpy.serialization import serialize_message
    from tf2_msgs.msg import TFMessage
    from vision_msgs.msg import Detection2D
    from vision_msgs.msg import Detection2DArray
    from vision_msgs.msg import ObjectHypothesisWithPose

    tf = TFMessage(transforms=[TransformStamped(child_frame_id='camera_optical')])
    tf.transforms[0].header.frame_id = 'base_link'
    tf.transforms[0].transform.rotation.w = 1.0
    back = deserialize_message(serialize_message(tf), TFMessage)
    assert back.transforms[0].child_frame_id == 'camera_optical'
    detection = Detection2D(id='7')
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = '41'
    hypothesis.hypothesis.score = 0.9
    detection.results.append(hypothesis)
    detection.bbox.center.position.x = 320.0
    detection.bbox.size_x = 20.0
    array = deserialize_message(serialize_message(Detection2DArray(detections=[detection])),
                                Detection2DArray)
    assert array.detections[0].results[0].hypothesis.class_id == '41'
    assert array.detections[0].bbox.center.position.x == 320.0


def test_package_depends_on_them_as_on_the_real_ones() -> None:
    """engram_ros uses them from Python only: exec_depend, and no CMake dependency."""
    package_xml = (ROOT / 'package.xml').read_text()
    cmake = (ROOT / 'CMakeLists.txt').read_text()
    for package in ('tf2_msgs', 'vision_msgs'):
        assert f'<exec_depend>{package}</exec_depend>' in package_xml
        assert not re.search(rf'<(build_)?depend>{package}<', package_xml)
        assert package not in cmake


def test_colcon_does_not_discover_the_shims_in_this_repository() -> None:
    """shims/ holds packages named like the real ones; a workspace build must not pick them up."""
    assert (SHIMS / 'COLCON_IGNORE').exists()
    colcon = shutil.which('colcon')
    if colcon is None:
        pytest.skip('colcon is not on PATH (source tools/env.sh)')
    listed = subprocess.run([colcon, 'list', '--names-only', '--base-paths', str(ROOT),
                             str(SHIMS)], capture_output=True, text=True, check=True,
                            cwd=ROOT / 'build' if (ROOT / 'build').is_dir() else ROOT)
    assert listed.stdout.split() == ['engram_ros']
