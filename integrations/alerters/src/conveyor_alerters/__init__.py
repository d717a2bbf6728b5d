"""Alerter flavors for conveyor: ``slack`` and ``apprise``.

Each is an entry point of ``conveyor.flavors`` (``alerter.slack``,
``alerter.apprise``) and imports its library only when an alerter of its
flavor is used, so installing this distribution without an extra breaks
nothing: using the flavor names the ``pip install`` command.
"""

from conveyor_alerters._apprise import AppriseAlerter, AppriseAlerterConfig, AppriseAlerterFlavor
from conveyor_alerters._slack import SlackAlerter, SlackAlerterConfig, SlackAlerterFlavor, reply_verdict

__all__ = [
    "AppriseAlerter",
    "AppriseAlerterConfig",
    "AppriseAlerterFlavor",
    "SlackAlerter",
    "SlackAlerterConfig",
    "SlackAlerterFlavor",
    "reply_verdict",
]
