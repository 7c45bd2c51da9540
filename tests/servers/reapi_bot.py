#!/usr/bin/env python3
"""A host-tools worker for BuildGrid, for gourd's remote-execution tests.

BuildGrid ships no worker (its own, buildbox, is not packaged anywhere this
project installs from). This one speaks the Remote Workers API (Bots): it
takes a lease, stages the action's input root from the CAS into a temporary
folder, runs the command there on the host, uploads the declared outputs
(files, and folders as Tree messages) with stdout and stderr, and completes
the lease with the ActionResult. It honours the action's timeout (the lease
then fails with DEADLINE_EXCEEDED). Blobs over 3 MiB travel by ByteStream.

Usage: reapi_bot.py TARGET [INSTANCE] [NAME]
"""
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import grpc
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as re
from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as re_grpc
from buildgrid._protos.google.bytestream import bytestream_pb2 as bs, bytestream_pb2_grpc as bs_grpc
from buildgrid._protos.google.devtools.remoteworkers.v1test2 import bots_pb2, bots_pb2_grpc

TARGET = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
INSTANCE = sys.argv[2] if len(sys.argv) > 2 else ""
NAME = sys.argv[3] if len(sys.argv) > 3 else f"gourd-test-bot-{os.getpid()}"
ACTIVE, COMPLETED = 2, 4  # LeaseState
BOT_OK = 1  # BotStatus.OK
LARGE = 3 << 20

options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
channel = grpc.insecure_channel(TARGET, options=options)
cas = re_grpc.ContentAddressableStorageStub(channel)
bytestream = bs_grpc.ByteStreamStub(channel)
bots = bots_pb2_grpc.BotsStub(channel)


def digest(data: bytes) -> re.Digest:
    return re.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def resource(path: str) -> str:
    return f"{INSTANCE}/{path}" if INSTANCE else path


def read_blobs(digests):
    out = {}
    small = []
    for d in digests:
        if d.size_bytes == 0:
            out[d.hash] = b""
        elif d.size_bytes > LARGE:
            name = resource(f"blobs/{d.hash}/{d.size_bytes}")
            out[d.hash] = b"".join(r.data for r in bytestream.Read(bs.ReadRequest(resource_name=name)))
        else:
            small.append(d)
    batches, size = [[]], 0
    for d in small:  # batches under the server's 4 MiB limit
        if size + d.size_bytes > LARGE and batches[-1]:
            batches.append([])
            size = 0
        batches[-1].append(d)
        size += d.size_bytes
    for batch in filter(None, batches):
        resp = cas.BatchReadBlobs(re.BatchReadBlobsRequest(instance_name=INSTANCE, digests=batch))
        for r in resp.responses:
            if r.status.code != 0:
                raise RuntimeError(f"CAS read failed for {r.digest.hash}: {r.status.message}")
            out[r.digest.hash] = r.data
    return out


def put_blobs(blobs):
    """Uploads blobs (bytes); returns their digests."""
    batch, size = [], 0
    for data in blobs:
        d = digest(data)
        if len(data) > LARGE:
            name = resource(f"uploads/{uuid.uuid4()}/blobs/{d.hash}/{d.size_bytes}")
            chunks = [data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
            bytestream.Write(
                iter(
                    bs.WriteRequest(
                        resource_name=name if i == 0 else "",
                        write_offset=i * (1 << 20),
                        finish_write=i == len(chunks) - 1,
                        data=c,
                    )
                    for i, c in enumerate(chunks)
                )
            )
            continue
        if size + len(data) > LARGE and batch:
            flush(batch)
            batch, size = [], 0
        batch.append(re.BatchUpdateBlobsRequest.Request(digest=d, data=data))
        size += len(data)
    if batch:
        flush(batch)
    return [digest(b) for b in blobs]


def flush(batch):
    resp = cas.BatchUpdateBlobs(re.BatchUpdateBlobsRequest(instance_name=INSTANCE, requests=batch))
    for r in resp.responses:
        if r.status.code != 0:
            raise RuntimeError(f"CAS write failed: {r.status.message}")


def stage(dir_digest: re.Digest, path: str):
    d = re.Directory()
    d.ParseFromString(read_blobs([dir_digest])[dir_digest.hash])
    os.makedirs(path, exist_ok=True)
    files = read_blobs([f.digest for f in d.files])
    for f in d.files:
        p = os.path.join(path, f.name)
        with open(p, "wb") as fh:
            fh.write(files[f.digest.hash])
        os.chmod(p, 0o755 if f.is_executable else 0o644)
    for sub in d.directories:
        stage(sub.digest, os.path.join(path, sub.name))


def with_mode(node, path: str, command: re.Command):
    """Gives `node` the file's mode when the command asks for it."""
    if "unix_mode" in command.output_node_properties:
        node.node_properties.unix_mode.value = os.stat(path).st_mode & 0o7777
    return node


def directory_of(path: str, children: list, uploads: list, command: re.Command) -> re.Directory:
    d = re.Directory()
    for name in sorted(os.listdir(path)):
        p = os.path.join(path, name)
        if os.path.isdir(p):
            child = directory_of(p, children, uploads, command)
            children.append(child)
            d.directories.add(name=name, digest=digest(child.SerializeToString()))
        elif os.path.isfile(p):
            data = open(p, "rb").read()
            uploads.append(data)
            with_mode(d.files.add(name=name, digest=digest(data), is_executable=os.access(p, os.X_OK)), p, command)
    return d


def execute(action_digest: re.Digest):
    """Returns (ActionResult, status code)."""
    action = re.Action()
    action.ParseFromString(read_blobs([action_digest])[action_digest.hash])
    command = re.Command()
    command.ParseFromString(read_blobs([action.command_digest])[action.command_digest.hash])
    with tempfile.TemporaryDirectory(prefix="gourd-bot-") as root:
        stage(action.input_root_digest, root)
        cwd = os.path.join(root, command.working_directory)
        outs = list(command.output_paths) or list(command.output_files) + list(command.output_directories)
        for o in outs:
            os.makedirs(os.path.dirname(os.path.join(cwd, o)) or cwd, exist_ok=True)
        env = {v.name: v.value for v in command.environment_variables}
        env.setdefault("PATH", os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"))
        timeout = action.timeout.seconds + action.timeout.nanos / 1e9 if action.HasField("timeout") else None
        result = re.ActionResult()
        result.execution_metadata.worker = NAME
        code = 0
        proc = subprocess.Popen(
            list(command.arguments), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
            result.exit_code = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole tree, or its pipes stay open
            stdout, stderr = proc.communicate()
            result.exit_code = -1
            code = 4  # DEADLINE_EXCEEDED
        uploads = [stdout, stderr]
        result.stdout_digest.CopyFrom(digest(stdout))
        result.stderr_digest.CopyFrom(digest(stderr))
        for o in outs:
            p = os.path.join(cwd, o)
            if os.path.isfile(p):
                data = open(p, "rb").read()
                uploads.append(data)
                with_mode(result.output_files.add(path=o, digest=digest(data), is_executable=os.access(p, os.X_OK)), p, command)
            elif os.path.isdir(p):
                children = []
                tree = re.Tree(root=directory_of(p, children, uploads, command), children=children)
                for child in children:
                    uploads.append(child.SerializeToString())
                data = tree.SerializeToString()
                uploads.append(data)
                result.output_directories.add(path=o, tree_digest=digest(data))
        put_blobs(uploads)
        return result, code


def main():
    while True:  # survive server restarts and start-up races
        try:
            serve()
        except grpc.RpcError as e:
            print(f"bots RPC failed ({e.code().name}); retrying in 1s", flush=True)
            time.sleep(1)


def serve():
    session = bots_pb2.BotSession(bot_id=NAME, status=BOT_OK)
    device = session.worker.devices.add(handle="localhost")
    device.properties.add(key="OSFamily", value="linux")
    session = bots.CreateBotSession(
        bots_pb2.CreateBotSessionRequest(parent=INSTANCE, bot_session=session), timeout=60, wait_for_ready=True
    )
    print(f"bot session {session.name}", flush=True)
    done = set()
    while True:
        for lease in session.leases:
            if lease.state == ACTIVE and lease.id not in done:
                if lease.payload.Is(re.Action.DESCRIPTOR):
                    action = re.Action()
                    lease.payload.Unpack(action)
                    payload = digest(action.SerializeToString())
                else:
                    payload = re.Digest()
                    lease.payload.Unpack(payload)
                started = time.time()
                try:
                    result, code = execute(payload)
                    lease.result.Pack(result)
                    lease.status.code = code
                except Exception as e:  # report, keep serving
                    lease.status.code = 13  # INTERNAL
                    lease.status.message = str(e)
                print(f"lease {lease.id}: status={lease.status.code} in {time.time() - started:.3f}s", flush=True)
                lease.state = COMPLETED
                done.add(lease.id)
        session = bots.UpdateBotSession(
            bots_pb2.UpdateBotSessionRequest(name=session.name, bot_session=session), timeout=60
        )


if __name__ == "__main__":
    main()
