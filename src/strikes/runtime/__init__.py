"""The engine: the per-process runtime loop, run actors, mailboxes and the flush loop."""

from strikes.runtime.actor import Actor as Actor
from strikes.runtime.actor import DeliveryPolicy as DeliveryPolicy
from strikes.runtime.loop import Runtime as Runtime
from strikes.runtime.loop import get_runtime as get_runtime
from strikes.runtime.loop import shutdown_runtime as shutdown_runtime
from strikes.runtime.mailbox import Mailbox as Mailbox
from strikes.runtime.mailbox import MailboxStatistics as MailboxStatistics

__all__ = [
    "Actor",
    "DeliveryPolicy",
    "Mailbox",
    "MailboxStatistics",
    "Runtime",
    "get_runtime",
    "shutdown_runtime",
]
