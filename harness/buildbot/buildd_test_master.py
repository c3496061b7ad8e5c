# Test scaffolding for the Buildbot master that harness/buildbot-master.ts starts: the
# generated master.cfg imports this module. Nothing here changes what a worker sees
# except `fix_update_read_file`, which makes the master do what its protocol says.

from twisted.internet import defer
from twisted.python import log

from buildbot.plugins import schedulers


def fix_update_read_file():
    """Work around an upstream Buildbot master bug (present in 3.7.0 and 4.3.0).

    Over the msgpack protocol a worker fetches a FileDownload's data by sending
    `update_read_file {command_id, length}` until the answer is empty. The protocol
    documentation says the answer's result is the data read; the master's handler
    reads it from the file and then answers `result: None`, so every FileDownload
    arrives on the worker as an empty file, whichever worker it is.

    This is test scaffolding: the master's handler method on its WebSocket protocol
    class is replaced by one that answers with the bytes the file reader returned.
    """
    from buildbot.worker.protocols.manager import msgpack as manager

    cls = manager.BuildbotWebSocketServerProtocol
    if getattr(cls.call_update_read_file, "returns_data", False):
        return  # master.cfg is read again on reconfig

    @defer.inlineCallbacks
    def call_update_read_file(self, msg):
        try:
            self.contains_msg_key(msg, ("command_id", "length"))
            reader = self.command_id_to_reader_map.get(msg["command_id"])
            if reader is None:
                raise KeyError('unknown "command_id"')
            data = yield reader.remote_read(msg["length"])
        except Exception as e:
            self.send_response_msg(msg, str(e), True)
            return
        self.send_response_msg(msg, data, False)

    call_update_read_file.returns_data = True
    cls.call_update_read_file = call_update_read_file
    log.msg("test scaffolding: update_read_file now answers with the data read")


class ForceWithProperties(schedulers.ForceScheduler):
    """A ForceScheduler whose JSON-RPC `force` call also takes `properties`, a map of
    build property names to JSON values, so a test need not declare each property as a
    form parameter first."""

    @defer.inlineCallbacks
    def gatherPropertiesAndChanges(self, collector, **kwargs):
        # force() has wrapped every argument in a list.
        extra = (kwargs.pop("properties", None) or [{}])[0] or {}
        props, changeids, sourcestamps = yield super().gatherPropertiesAndChanges(
            collector, **kwargs
        )
        for name, value in extra.items():
            props.setProperty(name, value, "Force Build Form")
        return (props, changeids, sourcestamps)
