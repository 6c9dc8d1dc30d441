"""Managed (lifecycle) nodes: what the memory and perception nodes share.

Both are ``rclpy.lifecycle.LifecycleNode``s, as nav2-style bring-ups expect: a lifecycle
manager drives them with ``lifecycle_msgs/srv/ChangeState`` on ``<node>/change_state``
(``<node>/get_state`` says where they are). Started plainly, the default (parameter
``autostart: true``), a node configures and activates itself while it starts, like nav2's
``lifecycle_manager`` with ``autostart``, so ``engram_launch``, the launch files and ``ros2 run``
behave as before. With ``autostart: false`` it waits, unconfigured, for a manager.

Each transition's work runs through :meth:`ManagedNode.transition`: an exception fails the
transition (the node stays in the state it was in; a ``change_state`` caller gets
``success: false`` and the log says why) and is kept, so that a failed autostart raises it and
the process stops with exit status 2 and the reason, as a node that cannot start always did.
"""

from __future__ import annotations

import threading
from typing import Callable

from rclpy.guard_condition import GuardCondition
from rclpy.lifecycle import LifecycleNode
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.service import Service
from rclpy.subscription import Subscription
from rclpy.timer import Timer

#: The parameter both nodes declare (read-only): name, default, description.
AUTOSTART = ('autostart', True,
             'configure and activate at start, as nav2 lifecycle_manager autostart; false: '
             'wait unconfigured for a lifecycle manager (lifecycle_msgs/srv/ChangeState on '
             '<node>/change_state) (read-only)')


class ManagedNode(LifecycleNode):
    """A lifecycle node whose failed transitions keep their reason."""

    def __init__(self, node_name: str, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        #: What the last failed transition raised (None after a success).
        self.transition_error: Exception | None = None
        self._autostarting = False
        #: What configure and activate created (:meth:`creating`), destroyed by cleanup and
        #: deactivate (:meth:`release`).
        self.configured_entities: list = []
        self.active_entities: list = []
        #: Held by every transition and by :meth:`creating`: a callback that creates entities
        #: (perception subscribes its sensors from a timer) cannot interleave with a
        #: deactivate, which would miss what it creates (and leave the sensors read).
        self.entity_lock = threading.RLock()

    def transition(self, name: str, work: Callable[[], None]) -> TransitionCallbackReturn:
        """Run ``work`` as transition ``name``: SUCCESS, or FAILURE with the reason kept and
        logged (a Ctrl-C while starting is not caught: it stops the start)."""
        self.transition_error = None
        try:
            with self.entity_lock:
                work()
        except Exception as exc:    # the state machine must get an answer, never a raise
            self.transition_error = exc
            if not self._autostarting:      # there the caller says why the node cannot start
                self.get_logger().error(f'{name} failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def autostart(self) -> None:
        """Configure, then activate, as a lifecycle manager would.

        :raises Exception: what the transition that failed raised.
        """
        self._autostarting = True
        try:
            for name, trigger in (('configure', self.trigger_configure),
                                  ('activate', self.trigger_activate)):
                if trigger() != TransitionCallbackReturn.SUCCESS:
                    raise self.transition_error or RuntimeError(f'{name} failed')
        finally:
            self._autostarting = False

    # ------------------------------------------------------------------------- entities
    def _entities(self) -> list:
        return [*self.services, *self.subscriptions, *self.timers, *self.publishers,
                *self.guards]

    def creating(self, work: Callable[[], None], into: list) -> None:
        """Run ``work``; every service, subscription, timer, publisher and guard condition it
        creates on this node is added to ``into`` (also when it fails half-way), for
        :meth:`release` to destroy."""
        with self.entity_lock:
            before = {id(entity) for entity in self._entities()}
            try:
                work()
            finally:
                into.extend(e for e in self._entities() if id(e) not in before)

    def release(self, entities: list) -> None:
        """Destroy ``entities`` (newest first) and empty the list."""
        with self.entity_lock:
            self._release(entities)

    def _release(self, entities: list) -> None:
        destroyers = ((Service, self.destroy_service),
                      (Subscription, self.destroy_subscription),
                      (Timer, self.destroy_timer), (Publisher, self.destroy_publisher),
                      (GuardCondition, self.destroy_guard_condition))
        while entities:
            entity = entities.pop()
            for kind, destroy in destroyers:
                if isinstance(entity, kind):
                    destroy(entity)
                    break
