# Test scaffolding: a stand-in for the `base` web plugin of a Buildbot master.
#
# The master's `www` service, which also serves the REST API under /api/v2 (the
# master's own Python code), refuses to start unless a `buildbot.www` plugin named
# `base` is installed. Upstream that plugin is the JavaScript UI (`buildbot-www`),
# which Debian does not package and PyPI is out of reach. This module stands in for it
# with an empty static directory: the API, the JSON-RPC control endpoints and the
# WebSocket/SSE event streams are the real master's; only the browser UI is missing.
#
# It is found through the sibling `*.dist-info` directory (its entry_points.txt), which
# pkg_resources discovers on sys.path: put this directory on PYTHONPATH.

from buildbot.www.plugin import Application

ep = Application(__name__, "stand-in for buildbot-www (no UI): test scaffolding")
