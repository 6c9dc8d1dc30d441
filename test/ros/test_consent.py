"""Without consent (``persist: false``) nothing reaches the disk: not the memory's store, and
not perception's frames and crops either.

Perception writes its evidence into the memory's ``<store_dir>/evidence``; it used to do so
whatever the memory's consent (7 JPEG files in 14 s of the simulator). Here the real launcher
runs the simulated robot, perception and the memory from a copy of the shipped parameter file
(``persist: false``) with the store in a temporary folder; once perception has seen objects and
the memory holds them, nothing may exist under the store folder, and perception counts the
evidence it did not write.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import yaml

from conftest import PARAMS
from conftest import wait_for

rclpy = pytest.importorskip('rclpy')
pytest.importorskip('pybullet')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402

from engram_ros.apps.launcher import Launcher  # noqa: E402
from engram_ros.apps.wiring import NODES  # noqa: E402
from engram_ros.ros.client import MemoryClient  # noqa: E402


def test_without_consent_perception_writes_no_evidence(test_node, tmp_path):
    store = tmp_path / 'store'
    doc = yaml.safe_load(PARAMS.read_text())
    memory = doc[NODES['memory'].file_key]['ros__parameters']
    assert memory['persist'] is False        # the shipped default: no consent
    memory.update(store_dir=str(store), semantic_text=False, consolidation_period=0.0)
    path = tmp_path / 'engram.yaml'
    path.write_text(yaml.safe_dump(doc))

    namespace = f'/c{uuid.uuid4().hex[:8]}'
    perception: dict[str, str] = {}
    lock = threading.Lock()

    def keep(array: DiagnosticArray) -> None:
        for status in array.status:
            if status.name.startswith(f'{namespace}/engram_perception:'):
                with lock:
                    perception.update({kv.key: kv.value for kv in status.values})

    def counter(key: str) -> int:
        with lock:
            return int(float(perception.get(key, 0)))

    test_node.create_subscription(DiagnosticArray, '/diagnostics', keep, 50)
    launcher = Launcher('sim', params_file=path, namespace=namespace, log_dir=tmp_path / 'logs',
                        grace=10.0, params=['sim.scenario:=small', 'sim.width:=320',
                                            'sim.height:=240'])
    launcher.start()
    try:
        client = MemoryClient(test_node, namespace)
        client.wait_for_services(timeout=60.0)

        def seen() -> bool:
            died = launcher.check()
            assert died is None, (tmp_path / 'logs' / f'{died.spec.name}.log').read_text()
            return (counter('object_observations') >= 2
                    and len(client.recall(kinds=['object', 'place'], k=10).engrams) >= 2)

        assert wait_for(seen, timeout=120.0, period=0.5), perception
    finally:
        codes = launcher.stop()
    logs = {p.name: p.read_text()[-2000:] for p in (tmp_path / 'logs').iterdir()}
    assert codes == {'memory': 0, 'perception': 0, 'sim': 0}, logs
    assert not store.exists(), sorted(str(p) for p in store.rglob('*'))
    assert counter('evidence_not_written') >= 2, perception   # counted, not silently lost
