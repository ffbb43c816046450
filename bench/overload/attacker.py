#!/usr/bin/env python3
"""Keyless hostile load on a braid HTTP port, for bench/overload/hostile.sh.

  attacker.py HOST PORT --slow N --flood RATE --seconds S

--slow N: N connections that each send a request head one byte every few
  seconds (slowloris), reopened when the server closes them.
--flood RATE: RATE connections a second that announce a 60 MB body, send
  its first 64 KiB without a key, and read what comes back.
Prints one line of JSON when done: the slow connections held at the end, the
flood requests sent and how they were answered, and the CPU seconds the
attacker itself used (it shares the machine with the server).
"""
import argparse
import asyncio
import json
import os
import time

HEAD = (b"POST /v2/models/clip-text/infer HTTP/1.1\r\nHost: braid\r\n"
        b"Content-Type: application/json\r\nContent-Length: 60000000\r\n\r\n")


async def slow(host, port, stop, held):
    trickle = b"POST /v2/models/clip-text/infer HTTP/1.1\r\nHost: braid\r\nX-Pad: "
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(1)
            continue
        held[0] += 1
        try:
            for i in range(10**6):
                if stop.is_set() or reader.at_eof():
                    break
                writer.write(trickle[i % len(trickle):i % len(trickle) + 1])
                await writer.drain()
                try:
                    await asyncio.wait_for(reader.read(1024), 3)
                    break  # answered or closed: start over
                except asyncio.TimeoutError:
                    pass
        except OSError:
            pass
        held[0] -= 1
        writer.close()


async def flood_one(host, port, answers):
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(HEAD + b"{" * 65536)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
        status = line.split(b" ")[1].decode() if line.startswith(b"HTTP/1.1") else "closed"
        writer.close()
    except (OSError, asyncio.TimeoutError, IndexError):
        status = "closed"
    answers[status] = answers.get(status, 0) + 1


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--flood", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    stop = asyncio.Event()
    held = [0]
    answers = {}
    slows = [asyncio.create_task(slow(args.host, args.port, stop, held)) for _ in range(args.slow)]
    floods = []
    end = time.monotonic() + args.seconds
    next_at = time.monotonic()
    while time.monotonic() < end:
        floods.append(asyncio.create_task(flood_one(args.host, args.port, answers)))
        next_at += 1 / args.flood
        await asyncio.sleep(max(0, next_at - time.monotonic()))
    stop.set()
    cpu = os.times()
    print(json.dumps({"slow_held": held[0], "flood_sent": len(floods), "flood_answers": answers,
                      "attacker_cpu_s": round(cpu.user + cpu.system, 1),
                      "seconds": args.seconds}), flush=True)
    await asyncio.gather(*floods, return_exceptions=True)
    for task in slows:
        task.cancel()


asyncio.run(main())
