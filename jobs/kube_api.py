"""Talking to the Kubernetes API without trusting its answers: every call of a command shares one
time budget (a server that trickles bytes cannot hold a command past it), every answer is read with
a size limit, parsed as JSON and checked for the shape the client reads, and every string in it is
made printable. What does not fit is one CifarError naming the request and the field.
"""

from __future__ import annotations

import json
import re
import threading
import time

from cifar_core.atomic import parse_json
from cifar_core.errors import CifarError

COMMAND_BUDGET_S = 30.0  # every answer one command waits for, together
MAX_ANSWER_BYTES = 128 * 2**20  # a namespace's events can be tens of MB; a proxy's endless answer is not
_BUDGET = "cifar_budget_s"  # on the ApiClient: seconds of API time the command has left


def budget(api, seconds: float = COMMAND_BUDGET_S):
    """Give the command using `api` `seconds` of API time in all (a wait between calls is not counted)."""
    setattr(api, _BUDGET, seconds)
    return api


def call(api, fn, *args, what: str, passthrough=(), read: bool = False, **kwargs):
    """One API call within what is left of the command's budget: the response (`read`: its body,
    at most MAX_ANSWER_BYTES). An unreachable cluster, a refused or broken answer becomes one
    CifarError; API errors whose status is in `passthrough` are raised for the caller to handle."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError, NewConnectionError

    left = getattr(api, _BUDGET, COMMAND_BUDGET_S)  # a client not given one by `budget` gets the usual one
    if left <= 0:
        raise _out_of_time(api, what)
    kwargs.setdefault("_request_timeout", (min(left, 10.0), left))

    def attempt():
        response = fn(*args, **kwargs)
        return _body(response, api, what) if read else response

    started = time.monotonic()
    try:
        return _within(attempt, left, lambda: _out_of_time(api, what))
    except ApiException as exc:
        if exc.status in passthrough:
            raise
        if exc.status in (401, 403):
            raise CifarError(f"the cluster refused {what} ({exc.status} {printable(str(exc.reason))}: "
                             f"{api_message(exc)}): check your credentials and RBAC") from None
        if not exc.status:  # TLS and other failures before an answer
            raise CifarError(f"no Kubernetes cluster reachable at {api.configuration.host}: {api_message(exc)}") from None
        raise CifarError(f"Kubernetes API error {exc.status} for {what}: {api_message(exc)}") from None
    except HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, NewConnectionError) or "connect" in type(reason).__name__.lower():
            raise CifarError(f"no Kubernetes cluster reachable at {api.configuration.host}: {_line(reason)}") from None
        raise CifarError(f"the Kubernetes API at {api.configuration.host} broke off its answer to {what}: "
                         f"{_line(reason)}") from None
    finally:
        setattr(api, _BUDGET, left - (time.monotonic() - started))


def get_json(api, fn, *args, what: str, schema=None, **kwargs):
    """An API call's JSON object, as the server sent it (no model classes in between), checked
    against `schema` (see `conform`) and with every string made printable."""
    data = call(api, fn, *args, what=what, read=True, _preload_content=False, **kwargs)
    return answer(data, api, what, schema)


def answer(data: bytes, api, what: str, schema=None):
    """`data` as a JSON object of the given shape, or one CifarError saying what came instead."""
    try:  # the project's bounded JSON (64 levels at most, no NaN): Kubernetes objects nest a few levels
        value = _clean(parse_json(data.decode("utf-8"), what))
    except (CifarError, UnicodeDecodeError):
        start = printable(data[:60].decode("utf-8", "replace")).strip()
        raise CifarError(f"the Kubernetes API at {api.configuration.host} answered {what} with something that is "
                         f"not JSON (it starts {start!r}): is a proxy or a login page in the way? Check the "
                         f"server of your kubeconfig (`kubectl cluster-info`)") from None
    problem = conform(value, {} if schema is None else schema, "")
    if problem:
        raise CifarError(f"the Kubernetes API at {api.configuration.host} answered {what} in a shape Kubernetes "
                         f"never sends: {problem}; is a proxy in the way, or the server broken? Check the server "
                         f"of your kubeconfig (`kubectl cluster-info`)")
    return value


def api_message(exc) -> str:
    """The `message` of the Status object an API error carries, else its reason; printable, one line."""
    try:
        body = json.loads(exc.body)
        message = body.get("message") if isinstance(body, dict) else None
        return _line(message if isinstance(message, str) and message.strip() else exc.reason)
    except (TypeError, ValueError, AttributeError, RecursionError):
        return _line(getattr(exc, "reason", None) or exc)


# --- bounded waits and reads ---


def _within(work, seconds: float, late):
    """`work()`, given up on after `seconds` (raising `late()`): a read timeout is per read, and a
    server that sends a byte a second never hits it. The abandoned call ends with its connection."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="cifar-kube-call", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise late()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _body(response, api, what: str) -> bytes:
    data = response.read(MAX_ANSWER_BYTES + 1)
    if len(data) > MAX_ANSWER_BYTES:
        raise CifarError(f"the Kubernetes API at {api.configuration.host} answered {what} with more than "
                         f"{MAX_ANSWER_BYTES // 2**20} MiB: is a proxy in the way?")
    return data


def _out_of_time(api, what: str) -> CifarError:
    return CifarError(f"the Kubernetes API at {api.configuration.host} has not answered {what} within the "
                      f"{COMMAND_BUDGET_S:g} s this command gives it in all: an overloaded or broken server, or a "
                      f"proxy in the way; try again, or check `kubectl cluster-info`")


# --- printable text ---

_WHITESPACE = re.compile(r"[\t\n\r\x0b\x0c\x1c-\x1f\x85\u2028\u2029]")
# Other C0/C1 controls, DEL, and the invisible format characters that reorder or hide text on a terminal.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def printable(text: str) -> str:
    """`text` safe to print on one line: line breaks and tabs become spaces, other control and
    invisible format characters their escapes (ESC is `\\x1b`), so a name cannot add lines or steer
    the terminal."""
    text = _WHITESPACE.sub(" ", text)
    return _UNPRINTABLE.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


def cut(text: str, limit: int) -> str:
    """`text` of at most `limit` characters, an ellipsis saying where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line(value) -> str:
    return " ".join(printable(str(value)).split())


def _clean(value):
    """The JSON value (as deep as `parse_json` allows) with every string, keys too, made printable."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


# --- shapes: what the client reads, and of which type ---
#
# A schema is a type (or a tuple of types); [schema], a list of such; {key: schema}, an object whose
# keys, when present and not null, have these shapes ("!key": it must be there; keys not named are
# not looked at); {str: schema}, an object of any keys whose values have that shape.

_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false", dict: "an object",
          list: "a list"}


def conform(value, schema, path: str) -> str | None:
    """Where `value` departs from `schema` (`items[2].metadata.labels['x'] is a whole number, not a
    string`), None when it fits."""
    where = path or "the answer"
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return f"{where} is {_kind(value)}, not an object"
        if set(schema) == {str}:
            return next(filter(None, (conform(v, schema[str], f"{path}[{k!r}]") for k, v in value.items() if v is not None)),
                        None)
        for key, sub in schema.items():
            name = key.lstrip("!")
            child = value.get(name)
            if child is None:
                if key.startswith("!"):
                    return f"{_join(path, name)} is missing"
                continue
            problem = conform(child, sub, _join(path, name))
            if problem:
                return problem
        return None
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{where} is {_kind(value)}, not a list"
        return next(filter(None, (conform(v, schema[0], f"{path}[{i}]") for i, v in enumerate(value) if v is not None)),
                    None)
    types = schema if isinstance(schema, tuple) else (schema,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        return f"{where} is {_kind(value)}, not {' or '.join(_NAMES.get(t, t.__name__) for t in types)}"
    return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value) -> str:
    shown = repr(value) if not isinstance(value, (dict, list)) else ""
    shown = f" {shown[:40]}" if shown else ""
    return f"{_NAMES.get(type(value), type(value).__name__)}{shown}"


def listing(item_schema) -> dict:
    """The schema of a list answer (`{"items": [...]}`) of such items."""
    return {"items": [item_schema]}


QUANTITY = (str, int, float)  # Kubernetes writes quantities as strings; numbers are checked where used
LABELS = {str: str}
METADATA = {"!name": str, "namespace": str, "labels": LABELS, "annotations": LABELS,
            "creationTimestamp": str, "deletionTimestamp": str}
_CONTAINER_STATE = {"waiting": {"reason": str, "message": str}, "running": dict,
                    "terminated": {"reason": str, "message": str, "exitCode": int}}
_CONTAINER_STATUS = {"name": str, "state": _CONTAINER_STATE, "lastState": _CONTAINER_STATE, "ready": bool,
                     "restartCount": int}
_RESOURCES = {"requests": {str: QUANTITY}, "limits": {str: QUANTITY}}
_CONTAINER = {"!name": str, "resources": _RESOURCES, "restartPolicy": str}
_MATCH = [{"key": str, "operator": str, "values": [str]}]
POD_SPEC = {"containers": [_CONTAINER], "initContainers": [_CONTAINER], "nodeName": str, "nodeSelector": LABELS,
            "tolerations": [{"key": str, "operator": str, "value": str, "effect": str}], "overhead": {str: QUANTITY},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": _MATCH, "matchFields": _MATCH}]}}}}
POD = {"!metadata": METADATA, "!spec": {**POD_SPEC, "!containers": [_CONTAINER]},
       "status": {"phase": str, "reason": str, "message": str,
                  "conditions": [{"type": str, "status": str, "reason": str, "message": str}],
                  "containerStatuses": [_CONTAINER_STATUS], "initContainerStatuses": [_CONTAINER_STATUS]}}
EVENT = {"metadata": {"creationTimestamp": str}, "involvedObject": {"kind": str, "name": str}, "reason": str,
         "message": str, "type": str, "lastTimestamp": str, "eventTime": str, "firstTimestamp": str,
         "source": {"component": str}, "reportingComponent": str, "count": int}
NODE = {"!metadata": METADATA, "spec": {"unschedulable": bool, "taints": [{"key": str, "value": str, "effect": str}]},
        "status": {"allocatable": {str: QUANTITY}, "capacity": {str: QUANTITY}}}
RAYJOB = {"!metadata": METADATA, "status": {"jobDeploymentStatus": str, "jobStatus": str, "reason": str,
                                            "rayClusterName": str}}
VERSION = {"gitVersion": str, "major": str, "minor": str}
API_GROUPS = {"groups": [{"!name": str, "versions": [{"!version": str}]}]}
API_RESOURCES = {"resources": [{"kind": str, "name": str}]}
ACCESS_REVIEW = {"status": {"allowed": bool}}
NAMESPACE = {"metadata": METADATA}
STORAGE_CLASS = {"!metadata": METADATA, "provisioner": str, "parameters": LABELS}
DAEMONSET = {"!metadata": METADATA, "spec": {"template": {"spec": POD_SPEC}}}
CONFIG_MAP = {"metadata": METADATA, "data": LABELS}
NAMED = {"!metadata": METADATA}
