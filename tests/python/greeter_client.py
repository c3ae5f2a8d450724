#!/usr/bin/env python3
"""The Python Greeter client (grpcio, asyncio): `strait-greeter call`'s flags and output.

Makes --count calls over one channel (one HTTP/2 connection), --concurrency at a time, and
prints a JSON line per call, {"ok","code","message","instance","elapsed_ms","replies","bytes"},
then {"summary":true,"calls","ok","by_instance","by_code"}. Exits 0 when every call succeeded.
"""

import argparse
import asyncio
import collections
import sys
import time

import grpc

from greeter_common import (
    INSTANCE_HEADER,
    MESSAGE_SIZE_OPTIONS,
    emit,
    metadata_value,
    pb2,
    pb2_grpc,
    preview,
)


METHODS = ["unary", "server-stream", "client-stream", "bidi"]


class Seen:
    """What a call got before it ended, failed or not."""

    def __init__(self):
        self.instance = None
        self.replies = 0
        self.bytes = 0
        self.last = ""

    def headers(self, metadata):
        self.instance = metadata_value(metadata, INSTANCE_HEADER)

    def reply(self, message):
        self.replies += 1
        self.bytes += len(message.encode())
        if self.instance is None and ": " in message:
            self.instance = message.split(": ", 1)[0]
        self.last = message


class Failed(Exception):
    """A call that broke the Greeter's rules; reported as INTERNAL, as the Rust client does."""


async def exchange(stub, args, name, timeout, seen):
    if args.method == "unary":
        call = stub.SayHello(pb2.HelloRequest(name=name), timeout=timeout, metadata=args.metadata)
        seen.headers(await call.initial_metadata())
        seen.reply((await call).message)
    elif args.method == "server-stream":
        request = pb2.HelloStreamRequest(name=name, count=args.messages)
        call = stub.SayHelloServerStream(request, timeout=timeout, metadata=args.metadata)
        seen.headers(await call.initial_metadata())
        async for reply in call:
            seen.reply(reply.message)
    elif args.method == "client-stream":
        requests = [pb2.HelloRequest(name=name) for _ in range(args.messages)]
        call = stub.SayHelloClientStream(iter(requests), timeout=timeout, metadata=args.metadata)
        seen.headers(await call.initial_metadata())
        seen.reply((await call).message)
    else:
        # Ping-pong: each request waits for the previous reply. read() raises the call's status
        # when it is not OK, so EOF means the stream ended well.
        call = stub.SayHelloBidi(timeout=timeout, metadata=args.metadata)
        for sent in range(1, args.messages + 1):
            await call.write(pb2.HelloRequest(name=name))
            if sent == 1:
                seen.headers(await call.initial_metadata())
            reply = await call.read()
            if reply is grpc.aio.EOF:
                raise Failed(f"the reply stream ended after {sent - 1} of {args.messages} replies")
            seen.reply(reply.message)
        await call.done_writing()
        if await call.read() is not grpc.aio.EOF:
            raise Failed("more replies than requests")
        if args.messages == 0:
            seen.headers(await call.initial_metadata())


async def call_once(stub, args, name):
    timeout = args.deadline / 1000 if args.deadline is not None else None
    seen = Seen()
    started = time.monotonic()
    code, message = 0, None
    try:
        await exchange(stub, args, name, timeout, seen)
    except grpc.aio.AioRpcError as err:
        code, message = err.code().value[0], err.details() or ""
        if seen.instance is None:
            seen.instance = metadata_value(
                err.initial_metadata(), INSTANCE_HEADER
            ) or metadata_value(err.trailing_metadata(), INSTANCE_HEADER)
    except Failed as err:
        code, message = grpc.StatusCode.INTERNAL.value[0], str(err)
    elapsed_ms = round((time.monotonic() - started) * 1000, 3)
    return {
        "ok": code == 0,
        "code": code,
        "message": preview(seen.last if code == 0 else message),
        "instance": seen.instance,
        "elapsed_ms": elapsed_ms,
        "replies": seen.replies,
        "bytes": seen.bytes,
    }


async def run(args):
    # Never through an http_proxy from the environment: test traffic stays where it is sent.
    options = MESSAGE_SIZE_OPTIONS + [("grpc.enable_http_proxy", 0)]
    if args.authority:
        options.append(("grpc.default_authority", args.authority))
    name = args.name + "." * max(0, args.size - len(args.name.encode()))
    calls = ok = 0
    by_instance, by_code = collections.Counter(), collections.Counter()
    remaining = args.count

    async def worker(stub):
        nonlocal calls, ok, remaining
        while remaining > 0:
            remaining -= 1
            line = await call_once(stub, args, name)
            emit(line)
            calls += 1
            ok += line["ok"]
            if line["instance"] is not None:
                by_instance[line["instance"]] += 1
            by_code[str(line["code"])] += 1

    async with open_channel(args, options) as channel:
        stub = pb2_grpc.GreeterStub(channel)
        await asyncio.gather(*(worker(stub) for _ in range(min(args.concurrency, args.count))))
    summary = {"summary": True, "calls": calls, "ok": ok}
    emit(summary | {"by_instance": dict(by_instance), "by_code": dict(by_code)})
    return ok == calls


def open_channel(args, options):
    """Cleartext HTTP/2, or TLS trusting --tls-ca only (ALPN h2, SNI --tls-server-name)."""
    if args.tls_ca is None:
        return grpc.aio.insecure_channel(args.to, options=options)
    with open(args.tls_ca, "rb") as ca:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.read())
    if args.tls_server_name:
        options = list(options) + [("grpc.ssl_target_name_override", args.tls_server_name)]
    return grpc.aio.secure_channel(args.to, credentials, options=options)


def metadata_pair(pair):
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{pair!r} is not KEY=VALUE")
    return key.lower(), value


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", required=True, help="HOST:PORT")
    parser.add_argument("--authority", help="the :authority of every request")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--deadline", type=int, help="milliseconds per call")
    parser.add_argument("--name", default="world")
    parser.add_argument("--method", choices=METHODS, default="unary")
    parser.add_argument("--size", type=int, default=0, help="pad the name with '.' to BYTES")
    parser.add_argument("--messages", type=int, default=3, help="messages per streaming call")
    parser.add_argument("--tls-ca", help="call over TLS, trusting this PEM file only")
    parser.add_argument("--tls-server-name", help="with --tls-ca: the SNI and name to verify")
    parser.add_argument(
        "--metadata",
        type=metadata_pair,
        action="append",
        default=[],
        help="KEY=VALUE sent with every call (repeatable)",
    )
    args = parser.parse_args()
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return args


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(run(parse_args())) else 1)
