"""The national payment platform protocol (PP-DVCQG) as one-stop systems speak it: pure functions.

Messages, checksums, timestamps, amounts and the two reply dialects
(``docs/onestop-pp.md``). Nothing here touches the database or the network: the use cases in
:mod:`payments.usecases.onestop_pp` decide, the HTTP adapter in ``api/routes/pp.py`` carries.
"""

from __future__ import annotations

from payments.onestop_pp import messages
from payments.onestop_pp.messages import *  # noqa: F403 - the package's face is its messages

__all__ = list(messages.__all__)
