"""The door guard's console (Textual): the last decision in one glance, and every gate task a key away.

One module per screen or modal, the styles in ``console.tcss``, and the messages workers post in
``messages.py``:

- ``app.py``: ``GateConsole``, the main screen, its workers (the reader's loop, the status watcher)
  and the handlers of their messages;
- ``confirm.py`` (``ConfirmPickup``) and ``override.py`` (``OverrideScreen``): the modals;
- ``search.py``, ``visitors.py``, ``alerts.py``, ``rollcall.py``, ``help.py``: the screens over it;
- ``panels.py``: what the main screen's panels say (details, recent decisions, counters, footer);
- ``text.py``: names shown exactly as typed (never as markup), photos in half blocks;
- ``reader.py``: which reader the console reads from; ``demo.py``: the demo's keys.

The console decides nothing: the ``Kiosk`` records and returns what is shown (``kiosk.display.Shown``).
"""

from kiosk.console.alerts import AlertsScreen
from kiosk.console.app import GateConsole, run_console
from kiosk.console.confirm import ConfirmPickup
from kiosk.console.demo import DemoKeys
from kiosk.console.help import HelpScreen
from kiosk.console.override import OverrideScreen
from kiosk.console.reader import open_reader
from kiosk.console.rollcall import RollCallScreen
from kiosk.console.search import SearchScreen
from kiosk.console.text import photo_text, plain
from kiosk.console.visitors import VisitorsScreen

__all__ = [
    "AlertsScreen", "ConfirmPickup", "DemoKeys", "GateConsole", "HelpScreen", "OverrideScreen", "RollCallScreen",
    "SearchScreen", "VisitorsScreen", "open_reader", "photo_text", "plain", "run_console",
]
