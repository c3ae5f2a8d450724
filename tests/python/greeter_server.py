#!/usr/bin/env python3
"""The Python Greeter server (grpcio, asyncio): `strait-greeter serve`'s flags and output.

Prints `listening ADDR` once bound, then a JSON line per call when it ends:
{"call":N,"method":"SayHello","code":0,"cancelled":false}. Every reply names the instance
("NAME: Hello <name>"), and so does `x-instance` metadata. With --fail-status, every
--fail-every'th call fails once its request is in: --fail-in headers answers Trailers-Only;
--fail-in trailers sends the response headers first (send_initial_metadata), then the status
in trailers. Deadlines and cancellation are grpcio's: the handler's task is cancelled.
"""

import argparse
import asyncio
import contextlib

import grpc

from greeter_common import INSTANCE_HEADER, MESSAGE_SIZE_OPTIONS, emit, pb2, pb2_grpc


class Greeter(pb2_grpc.GreeterServicer):
    def __init__(self, args):
        self.name = args.name
        self.delay = args.delay / 1000
        self.fail_status = args.fail_status
        self.fail_every = args.fail_every
        self.fail_in = args.fail_in
        self.metadata = ((INSTANCE_HEADER, self.name),)
        self.calls = 0

    @contextlib.contextmanager
    def served(self, context, method):
        """Numbers a call and prints its line when the handler ends, however it ends."""
        self.calls += 1
        call = self.calls
        code, cancelled = grpc.StatusCode.OK.value[0], False
        try:
            yield call
        except (asyncio.CancelledError, GeneratorExit):
            # grpcio cancels the handler when the client goes away, and also at the deadline,
            # when it has sent DEADLINE_EXCEEDED itself. (The context's done callback cannot
            # tell: it runs before cancelled() is set.)
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                code = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
            else:
                code, cancelled = None, True
            raise
        except BaseException:
            # abort() raises, having set the code.
            code = (context.code() or grpc.StatusCode.UNKNOWN).value[0]
            raise
        finally:
            emit({"call": call, "method": method, "code": code, "cancelled": cancelled})

    async def pause(self):
        if self.delay:
            await asyncio.sleep(self.delay)

    def failing(self, call):
        return self.fail_status is not None and call % self.fail_every == 0

    async def admit(self, context, call):
        """Fails the call (after a reply's delay) if it is one that must fail."""
        if not self.failing(call):
            return
        await self.pause()
        if self.fail_in == "trailers":
            await context.send_initial_metadata(self.metadata)
        code = next(c for c in grpc.StatusCode if c.value[0] == self.fail_status)
        await context.abort(
            code, f"{self.name}: injected failure of call {call}", trailing_metadata=self.metadata
        )

    def greet(self, name):
        return pb2.HelloReply(message=f"{self.name}: Hello {name}")

    async def SayHello(self, request, context):
        with self.served(context, "SayHello") as call:
            await self.admit(context, call)
            await self.pause()
            await context.send_initial_metadata(self.metadata)
            return self.greet(request.name)

    async def SayHelloServerStream(self, request, context):
        with self.served(context, "SayHelloServerStream") as call:
            await self.admit(context, call)
            await context.send_initial_metadata(self.metadata)
            for _ in range(request.count):
                await self.pause()
                yield self.greet(request.name)

    async def SayHelloClientStream(self, request_iterator, context):
        with self.served(context, "SayHelloClientStream") as call:
            count = size = 0
            async for request in request_iterator:
                count += 1
                size += len(request.name.encode())
            # Like a unary call, it fails only once the whole request is in.
            await self.admit(context, call)
            await self.pause()
            await context.send_initial_metadata(self.metadata)
            message = f"{self.name}: received {count} messages, {size} bytes"
            return pb2.HelloStreamSummary(message=message, count=count, bytes=size)

    async def SayHelloBidi(self, request_iterator, context):
        with self.served(context, "SayHelloBidi") as call:
            if self.failing(call):
                # Like every kind, it fails once it has a request (see the Rust Greeter).
                await anext(request_iterator, None)
                await self.admit(context, call)
            await context.send_initial_metadata(self.metadata)
            async for request in request_iterator:
                await self.pause()
                yield self.greet(request.name)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT; port 0 picks one")
    parser.add_argument("--name", required=True)
    parser.add_argument("--fail-status", type=int, choices=range(1, 17), metavar="CODE")
    parser.add_argument("--fail-every", type=int, default=1)
    parser.add_argument("--fail-in", choices=["headers", "trailers"], default="trailers")
    parser.add_argument("--delay", type=int, default=0, help="milliseconds before each reply")
    args = parser.parse_args()
    if args.fail_every < 1:
        parser.error("--fail-every must be at least 1")
    return args


async def main():
    args = parse_args()
    # No SO_REUSEPORT (grpcio's default): a second server on a taken port must fail, not share it.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)] + MESSAGE_SIZE_OPTIONS)
    pb2_grpc.add_GreeterServicer_to_server(Greeter(args), server)
    port = server.add_insecure_port(args.listen)
    await server.start()
    host = args.listen.rsplit(":", 1)[0]
    print(f"listening {host}:{port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main())
