"""A second instrument on the same port name or socket is refused, naming the first one's PID."""

import os

import pytest

from instrument.app.instance import InstanceClaim
from instrument.errors import UserError


def test_same_port_or_same_socket_is_refused_naming_the_pid(tmp_path):
    (tmp_path / "other").mkdir()  # a socket elsewhere: the port is still claimed in the runtime folder
    first = InstanceClaim(tmp_path / "a.sock", "Latent Snare", tmp_path)
    with pytest.raises(
        UserError, match=rf"MIDI port 'Latent Snare' \(PID {os.getpid()}\).*--virtual-port and --socket"
    ):
        InstanceClaim(tmp_path / "other" / "b.sock", "Latent Snare", tmp_path)
    with pytest.raises(UserError, match=rf"socket {tmp_path / 'a.sock'} \(PID {os.getpid()}\)"):
        InstanceClaim(tmp_path / "a.sock", "Other", tmp_path)
    second = InstanceClaim(tmp_path / "b.sock", "Other", tmp_path)  # another port and socket: allowed
    second.release()
    first.release()
    InstanceClaim(tmp_path / "a.sock", "Latent Snare", tmp_path).release()  # released: the next one starts


def test_a_refused_claim_keeps_nothing(tmp_path):
    first = InstanceClaim(tmp_path / "a.sock", "P", tmp_path)
    with pytest.raises(UserError):
        InstanceClaim(tmp_path / "b.sock", "P", tmp_path)  # got b's socket lock, then lost on the port
    first.release()
    InstanceClaim(tmp_path / "b.sock", "Q", tmp_path).release()  # b's socket lock was let go
