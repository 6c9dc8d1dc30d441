"""The memory node's sentence model, loaded in the background: until it is ready a recall's
text is matched by exact words only; then the store's ``text_matcher`` maps words to tags by
meaning. Loading never slows the callbacks (its thread runs at a lower priority)."""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

from engram_ros.core.memory import MemoryStore
from engram_ros.core.semantic import SemanticTags


def load_text_matcher(store: MemoryStore, threshold: float, logger,
                      say: Callable[[str], None]) -> None:
    """Load the sentence model, then let ``store``'s recall use it (run in its own thread).

    :param say: told the state: ``'ready'`` or ``'failed: <why>'`` (diagnostics).
    """
    try:
        # Only this thread: loading must not slow the callbacks (Linux nice is per thread).
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except OSError:
        pass
    started = time.monotonic()
    try:
        from engram_ros.perception.text import MODEL_DIM
        from engram_ros.perception.text import TextEncoder
        encoder = TextEncoder(dim=MODEL_DIM)
        encoder.embed(['warm up'])
    except Exception as exc:    # a missing package or a broken model: exact words only
        state = f'failed: {type(exc).__name__}: {exc}'
        say(state)
        logger.warning(f'semantic text matching is off: {state}')
        return
    store.text_matcher = SemanticTags(encoder.embed, threshold=threshold)
    say('ready')
    logger.info(f'semantic text matching ready ({time.monotonic() - started:.1f} s to load the '
                f'model)')
