"""What the Python Greeter's server and client share with each other and with the Rust one.

The protobuf and gRPC classes are built from ../proto/helloworld.proto when this module is
imported: grpc.protos_and_services (grpcio-tools) compiles it in memory, so no generated file
can drift from the proto and none is committed.
"""

import json
import os
import sys

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "proto"))
pb2, pb2_grpc = grpc.protos_and_services("helloworld.proto")

# As in strait_tests::greeter.
INSTANCE_HEADER = "x-instance"
MAX_MESSAGE_BYTES = 32 << 20
MESSAGE_PREVIEW_CHARS = 200

MESSAGE_SIZE_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]

def emit(value):
    """Prints one JSON line, flushed (readers wait for lines, not for exit). Once nobody reads
    stdout, lines are dropped rather than failing the call that reports them."""
    try:
        print(json.dumps(value, separators=(",", ":")), flush=True)
    except BrokenPipeError:
        # Also keeps the interpreter's flush at exit from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def preview(message):
    if len(message) > MESSAGE_PREVIEW_CHARS:
        return message[:MESSAGE_PREVIEW_CHARS] + "..."
    return message


def metadata_value(metadata, key):
    for name, value in metadata or ():
        if name == key:
            return value
    return None
