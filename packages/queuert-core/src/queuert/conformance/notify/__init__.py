"""The notify adapter cases, one module per area, composed into
:class:`NotifyAdapterConformance`."""

from queuert.conformance.notify.close import CloseCases
from queuert.conformance.notify.cross_instance import CrossInstanceCases
from queuert.conformance.notify.delivery import DeliveryCases
from queuert.conformance.notify.filtering import FilteringCases
from queuert.conformance.notify.fixtures import NotifyAdapterFixtures
from queuert.conformance.notify.isolation import IsolationCases
from queuert.conformance.notify.subscriptions import SubscriptionCases
from queuert.conformance.notify.wake_hints import WakeHintCases


class NotifyAdapterConformance(
    NotifyAdapterFixtures,
    DeliveryCases,
    FilteringCases,
    SubscriptionCases,
    IsolationCases,
    WakeHintCases,
    CloseCases,
    CrossInstanceCases,
):
    """Every notify adapter case. Subclass it as ``Test...`` and override the
    ``notify_adapter`` fixture (and, for a cross-process transport,
    ``second_notify_adapter``). Cases an adapter's capabilities rule out are
    skipped with the capability named."""


__all__ = [
    "CloseCases",
    "CrossInstanceCases",
    "DeliveryCases",
    "FilteringCases",
    "IsolationCases",
    "NotifyAdapterConformance",
    "NotifyAdapterFixtures",
    "SubscriptionCases",
    "WakeHintCases",
]
