"""Empty a SageMaker domain: delete its apps, then spaces, then user profiles, then (optionally) the domain.

CloudFormation cannot delete a domain that still has apps or spaces, and users create
those outside the stack. This core does the deleting, and is safe to run again and again:
each pass looks at what is left, skips what is already deleting or gone, and waits with
backoff until nothing blocks the domain's deletion. It takes its SageMaker client and its
sleep/clock as arguments, so tests drive it against a local API server.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}
)
GONE_CODES = frozenset({"ResourceNotFound", "ResourceNotFoundException"})
DONE_APP_STATES = frozenset({"Deleted", "Failed"})  # a Failed app no longer blocks the domain


class TeardownError(Exception):
    """The teardown cannot finish; the message says what is left and why."""


class TeardownTimeout(TeardownError):
    """Work remains when the deadline passes; the message says what."""


class UnexpectedListing(TeardownError):
    """SageMaker listed an item without a field needed to delete it."""


@dataclass
class Teardown:
    """Deletes everything inside one domain.

    Attributes:
        client: a boto3 SageMaker client.
        domain_id: the domain to empty.
        deadline: ``clock()`` value by which the work must be done.
        sleep, clock: injected for tests.
        max_attempts: tries per API call on throttling.
        poll_seconds: first wait between status checks; doubles up to ``max_poll_seconds``.
    """

    client: Any
    domain_id: str
    deadline: float
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    max_attempts: int = 8
    poll_seconds: float = 2.0
    max_poll_seconds: float = 30.0
    log: Callable[[str], None] = print
    actions: list[str] = field(default_factory=list)

    # -- API calls with throttling retries ---------------------------------------------------

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Call ``operation``, retrying throttling with exponential backoff, never past the deadline.

        Raises:
            TeardownTimeout: the deadline has passed, or would pass during the next wait.
            ClientError: any error but throttling, or throttling on the last attempt.
        """
        delay = 1.0
        for attempt in range(1, self.max_attempts + 1):
            if self.clock() >= self.deadline:
                raise TeardownTimeout(f"deadline reached before {operation} on domain {self.domain_id}")
            try:
                return getattr(self.client, operation)(**params)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in THROTTLING_CODES or attempt == self.max_attempts:
                    raise
                if self.clock() + delay > self.deadline:
                    raise TeardownTimeout(
                        f"{operation} on domain {self.domain_id} still throttled ({code}) after {attempt} tries "
                        "at the deadline"
                    ) from None
                self.log(f"{operation} throttled ({code}); retry {attempt} in {delay:.0f} s")
                self.sleep(delay)
                delay = min(delay * 2, 20.0)
        raise AssertionError("unreachable")

    def _pages(self, operation: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = self.call(operation, **params, **({"NextToken": token} if token else {}))
            yield from page.get(key, [])
            token = page.get("NextToken")
            if not token:
                return

    # -- what is left -----------------------------------------------------------------------------

    def domain_exists(self) -> bool:
        try:
            self.call("describe_domain", DomainId=self.domain_id)
        except ClientError as exc:
            if _is_gone(exc):
                return False
            raise
        return True

    def apps(self) -> list[dict[str, Any]]:
        return [
            a
            for a in self._pages("list_apps", "Apps", DomainIdEquals=self.domain_id)
            if a.get("Status") not in DONE_APP_STATES
        ]

    def spaces(self) -> list[dict[str, Any]]:
        return list(self._pages("list_spaces", "Spaces", DomainIdEquals=self.domain_id))

    def user_profiles(self) -> list[dict[str, Any]]:
        return list(self._pages("list_user_profiles", "UserProfiles", DomainIdEquals=self.domain_id))

    # -- deleting ---------------------------------------------------------------------------------

    def _delete(self, operation: str, description: str, **params: Any) -> None:
        try:
            self.call(operation, **params)
            self.actions.append(description)
        except ClientError as exc:
            # Gone already, or already being deleted (ResourceInUse): nothing to do, the wait covers it.
            if _is_gone(exc) or _code(exc) == "ResourceInUse":
                self.log(f"{description}: {_code(exc)}, skipped")
                return
            raise

    def delete_apps(self) -> int:
        pending = self.apps()
        for app in pending:
            if app.get("Status") == "Deleting":
                continue
            _require(app, "list_apps", "AppType", "AppName")
            if app.get("SpaceName"):
                owner = {"SpaceName": _text(app, "SpaceName", "list_apps")}
            elif app.get("UserProfileName"):
                owner = {"UserProfileName": _text(app, "UserProfileName", "list_apps")}
            else:
                raise UnexpectedListing(f"list_apps returned an app with neither SpaceName nor UserProfileName: {app}")
            self._delete(
                "delete_app",
                f"delete app {app['AppType']}/{app['AppName']}",
                DomainId=self.domain_id,
                AppType=app["AppType"],
                AppName=app["AppName"],
                **owner,
            )
        return len(pending)

    def delete_spaces(self) -> int:
        pending = self.spaces()
        for space in pending:
            if space.get("Status") != "Deleting":
                _require(space, "list_spaces", "SpaceName")
                self._delete(
                    "delete_space",
                    f"delete space {space['SpaceName']}",
                    DomainId=self.domain_id,
                    SpaceName=space["SpaceName"],
                )
        return len(pending)

    def delete_user_profiles(self) -> int:
        pending = self.user_profiles()
        for profile in pending:
            if profile.get("Status") != "Deleting":
                _require(profile, "list_user_profiles", "UserProfileName")
                self._delete(
                    "delete_user_profile",
                    f"delete user profile {profile['UserProfileName']}",
                    DomainId=self.domain_id,
                    UserProfileName=profile["UserProfileName"],
                )
        return len(pending)

    def _until_empty(self, what: str, step: Callable[[], int]) -> None:
        wait = self.poll_seconds
        while (remaining := step()) > 0:
            if self.clock() + wait > self.deadline:
                raise TeardownTimeout(f"{remaining} {what} of domain {self.domain_id} still deleting at the deadline")
            self.log(f"{remaining} {what} still deleting; checking again in {wait:.0f} s")
            self.sleep(wait)
            wait = min(wait * 2, self.max_poll_seconds)

    def run(self, *, delete_domain: bool) -> list[str]:
        """Empty the domain (and delete it, with its home EFS, when ``delete_domain``).

        Returns:
            What this pass deleted (empty when a previous pass did it all).

        Raises:
            TeardownTimeout: work remains at the deadline.
            UnexpectedListing: a listed item lacks a name needed to delete it.
            ClientError: an API error other than throttling, not-found or already-deleting.
        """
        if not self.domain_exists():
            self.log(f"domain {self.domain_id} is already gone")
            return self.actions
        self._until_empty("apps", self.delete_apps)
        self._until_empty("spaces", self.delete_spaces)
        self._until_empty("user profiles", self.delete_user_profiles)
        if delete_domain:
            self._delete(
                "delete_domain",
                f"delete domain {self.domain_id} and its home EFS",
                DomainId=self.domain_id,
                RetentionPolicy={"HomeEfsFileSystem": "Delete"},
            )
            self._until_empty("domain", lambda: int(self.domain_exists()))
        return self.actions


def _text(item: dict[str, Any], key: str, operation: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise UnexpectedListing(f"{operation} returned an item whose {key} is not a name: {item}")
    return value


def _require(item: dict[str, Any], operation: str, *keys: str) -> None:
    for key in keys:
        _text(item, key, operation)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_gone(exc: ClientError) -> bool:
    # SageMaker answers "not found" either way, depending on the API: ResourceNotFound, or a
    # ValidationException saying it could not find the resource.
    if _code(exc) in GONE_CODES:
        return True
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return _code(exc) == "ValidationException" and bool(_NOT_FOUND.search(message))


_NOT_FOUND = re.compile(r"could not find|cannot find|does not exist|not found", re.IGNORECASE)
