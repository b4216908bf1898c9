"""Finding suspicious use of keys and tokens in the usage log, off the request path.

`detect()` reads the log from where it stopped last time (DetectionCursor), in id order
and in batches, and raises or adds to Flags:

- ended_token_used (high): a revoked or expired key, or an ended client token, is tried.
- blocked_network (high): a key's network allowlist refused calls (403 ip_not_allowed).
- key_on_client_api (high): a key was sent to the Client API, which only browsers call:
  it is in a page's code (refused, and logged on the key: api/authentication.py).
- auth_failure_burst (high): AUTH_BURST_THRESHOLD (20) or more auth/permission failures
  for one key within AUTH_BURST_WINDOW (10 minutes), not counting its suspension's or
  allowlist's own refusals, which have their own answer.
- new_network (medium): a key succeeds from a /24 (IPv4) or /48 (IPv6) it has never used,
  after its first day of use. Calls through client tokens are left out: browsers come
  from everywhere by design. One open alert per key counts and lists its new networks;
  it becomes high at NEW_NETWORKS_HIGH (5) of them. A key counts and learns at most
  NEW_NETWORKS_PER_RUN (1,000) new networks in a run; past them the run passes over the
  key's calls here (from the next batch on, without working out their networks), and the
  alert's count says "or more": one key sprayed from new networks costs a run a bounded
  share, not every other project's wait. A key learns
  at most KEY_NETWORKS_KEPT (10,000) networks; past them a network stays new, and the
  alert says the memory is full and is high: once it is acknowledged, networks past the
  memory raise nothing more until the key is rolled.
- new_agent (medium): a key succeeds with an agent it has never called, after the same
  learning period as new networks (and off with them). One open alert per key lists them.
- volume_spike (medium): a key's calls in an hour reach SPIKE_FACTOR times its trailing
  7-day hourly average, and that many times its average at the same hour of the day (a
  nightly job is no spike), and at least SPIKE_MIN_CALLS, once it has a day of history.
  One open alert per key counts the hours over its usual.
- client_token_many_ips (medium): one client token used from CLIENT_TOKEN_MAX_IPS or more
  addresses.
- signs_together (high): two of new_network, new_agent and volume_spike on one key within
  TOGETHER_WITHIN (an hour) of each other, none of them high: each alone may be ordinary,
  together they are a strong sign of a leak. One open alert per key names the kinds; the
  signs stay medium.
- unused_key (low): an active key unused for UNUSED_AFTER; suggest revoking it.

A personal access token used from a network it never used, after its first day, raises
no flag (a PAT is its person's, not a project's): its person gets a security notice
(alerts/token_networks.py), at most one per token per hour. Past NEW_NETWORKS_PER_RUN
networks it never used in a run, the rest of the run passes over its calls, as a key's,
and the notice says "or more".

Calls of a deleted project (accounts.services.project_delete: its keys revoked, but
still tried) raise nothing: nobody can see its alerts any more.

The numbers are the defaults: a project's owners may set their own, or turn a kind that
depends on them off (AlertRules, alerts/rules.py). Each batch reads the rules of all the
projects in it with one query.

A new high-severity flag emails the project's owners (and members who asked for these
emails; notifications/), one email each, at most once per key per hour.
run_scheduler runs it every minute: `python manage.py detect_suspicious_activity`.

Every row is read exactly once: usage rows get their ids in commit order (usage/writer.py
serialises its batches), so nothing can commit behind the cursor. Each read is bounded by
time too (`unread_rows`), so it touches only the recent days' partitions; a batch written
late is noted by the writer and read however far back it goes. One bad row or project
never stops the others: each check and each flag is isolated (a savepoint), a failure is
logged and counted, and the run goes on, as it does past a statement that runs into the
statement or lock timeout (core/db_errors.py); only the database itself going away stops
it, with the cursor where it was. Emails go out from what is stored (high-severity flags not
yet emailed), so a run that fails after saving a flag does not lose its email.

A module for each part (the run, then what the checks share, then a module per kind or
group of kinds, then the mail):

- run: detect(), the cursor and its batches, which rows are read (unread_rows)
- result: DetectionResult, and _isolated, which runs each part in a savepoint
- thresholds: each batch's projects' rules, read in one query
- flags: _raise (open a flag or add to the open one) and the names and spans flags say
- ended_tokens, blocked_networks, keys_on_client_api, auth_bursts, new_networks (with
  _firsts, the learning period new agents share), new_agents, volume_spikes,
  signs_together, client_token_spread, unused_keys: a check each
- emails: email_pending_flags, the owners' emails

`from alerts.detection import x` names what callers use, wherever it lives. A test that
patches a name a check looks up (send_mail, network_of, a check) patches it in the module
that reads it, not here: this package only re-exports. Each module logs under its own
name (alerts.detection.run, ...), all under alerts.detection."""

from alerts.detection.emails import email_pending_flags
from alerts.detection.new_networks import (
    KEY_NETWORKS_KEPT,
    NEW_NETWORKS_HIGH,
    NEW_NETWORKS_PER_RUN,
)
from alerts.detection.result import DetectionResult
from alerts.detection.run import BATCH_SIZE, FIELDS, READ_MARGIN, detect, unread_rows
from alerts.rules import (
    AUTH_BURST_THRESHOLD,
    AUTH_BURST_WINDOW,
    CLIENT_TOKEN_MAX_IPS,
    NEW_NETWORK_GRACE,
    SPIKE_FACTOR,
    SPIKE_MIN_CALLS,
    UNUSED_AFTER,
)

__all__ = [
    "AUTH_BURST_THRESHOLD",
    "AUTH_BURST_WINDOW",
    "BATCH_SIZE",
    "CLIENT_TOKEN_MAX_IPS",
    "FIELDS",
    "KEY_NETWORKS_KEPT",
    "NEW_NETWORKS_HIGH",
    "NEW_NETWORKS_PER_RUN",
    "NEW_NETWORK_GRACE",
    "READ_MARGIN",
    "SPIKE_FACTOR",
    "SPIKE_MIN_CALLS",
    "UNUSED_AFTER",
    "DetectionResult",
    "detect",
    "email_pending_flags",
    "unread_rows",
]
