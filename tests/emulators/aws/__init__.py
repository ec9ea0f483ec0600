"""AWS side of the test bed: moto server, account-scoped clients and seeding, fault proxy."""

from .accounts import Accounts, client, default_key_policy
from .fault_proxy import FaultProxy
from .moto_server import MotoServer

__all__ = ["Accounts", "FaultProxy", "MotoServer", "client", "default_key_policy"]
