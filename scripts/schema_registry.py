#!/usr/bin/env python3
"""A small schema registry speaking the Confluent Schema Registry REST API, for the tests.

No real registry installs here (Confluent's is on Maven Central, Karapace is not on PyPI), so
the end-to-end tests run this one. It implements the calls a producer's serializer and
kappa-lake make, with the documented request and response shapes:

    POST /subjects/{subject}/versions      {"schema": "...", ["schemaType": "AVRO"]}
                                           -> {"id", "subject", "version", "schema"}
    GET  /schemas/ids/{id}                 -> {"schema"}            (404: error_code 40403)
    GET  /subjects                         -> ["subject", ...]
    GET  /subjects/{subject}/versions      -> [1, 2, ...]            (404: error_code 40401)
    GET  /subjects/{subject}/versions/{v}  -> {"id", "subject", "version", "schema"}
                                              (v = a number or "latest"; 404: 40402)

Ids are global and stable: the same schema text registered twice (in any subject) keeps its
id. A request may ask for an id ({"schema", "id"}), as Confluent's IMPORT mode allows. It does not check compatibility (kappa-lake's `schema check` does that).

    schema_registry.py --port 0 [--user NAME:PASSWORD] [--fail-first N]
                       [--tls-cert PEM --tls-key PEM] [--schema SUBJECT:ID:FILE ...]

--user requires HTTP basic auth. --tls-cert/--tls-key serve HTTPS. --schema registers FILE's
schema under SUBJECT with id ID at start. --fail-first answers the first N requests with 503, to test
retries. Prints "listening on http://127.0.0.1:<port>" once ready. Each request is logged to
stderr.
"""

import argparse
import base64
import json
import re
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class Registry:
    def __init__(self):
        self.lock = threading.Lock()
        self.ids = {}  # schema text -> id
        self.schemas = {}  # id -> schema text
        self.subjects = {}  # subject -> [id per version]

    def register(self, subject, schema, wanted_id=None):
        with self.lock:
            sid = self.ids.get(schema)
            if wanted_id is not None and sid not in (None, wanted_id):
                raise ValueError(f"schema already registered with id {sid}")
            if wanted_id is not None and self.schemas.get(wanted_id, schema) != schema:
                raise ValueError(f"id {wanted_id} holds another schema")
            if sid is None:
                sid = wanted_id if wanted_id is not None else max(self.schemas, default=0) + 1
                self.ids[schema] = sid
                self.schemas[sid] = schema
            versions = self.subjects.setdefault(subject, [])
            if sid not in versions:
                versions.append(sid)
            return {"id": sid, "subject": subject, "version": versions.index(sid) + 1, "schema": schema}


def make_handler(registry, user, fail_first):
    state = {"failures_left": fail_first}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write("registry: " + (fmt % args) + "\n")

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, status, code, message):
            self.reply(status, {"error_code": code, "message": message})

        def guard(self):
            with registry.lock:
                if state["failures_left"] > 0:
                    state["failures_left"] -= 1
                    self.error(503, 50003, "injected failure")
                    return False
            if user is not None:
                expected = "Basic " + base64.b64encode(user.encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.error(401, 40101, "Unauthorized")
                    return False
            return True

        def do_GET(self):
            if not self.guard():
                return
            path = urlsplit(self.path).path.rstrip("/")
            if m := re.fullmatch(r"/schemas/ids/(\d+)", path):
                schema = registry.schemas.get(int(m.group(1)))
                if schema is None:
                    return self.error(404, 40403, "Schema not found")
                return self.reply(200, {"schema": schema})
            if path == "/subjects":
                return self.reply(200, sorted(registry.subjects))
            if m := re.fullmatch(r"/subjects/([^/]+)/versions", path):
                versions = registry.subjects.get(unquote(m.group(1)))
                if versions is None:
                    return self.error(404, 40401, "Subject not found")
                return self.reply(200, list(range(1, len(versions) + 1)))
            if m := re.fullmatch(r"/subjects/([^/]+)/versions/([^/]+)", path):
                subject = unquote(m.group(1))
                versions = registry.subjects.get(subject)
                if versions is None:
                    return self.error(404, 40401, "Subject not found")
                v = len(versions) if m.group(2) == "latest" else int(m.group(2)) if m.group(2).isdigit() else 0
                if not 1 <= v <= len(versions):
                    return self.error(404, 40402, "Version not found")
                sid = versions[v - 1]
                return self.reply(200, {"subject": subject, "id": sid, "version": v, "schema": registry.schemas[sid]})
            self.error(404, 404, "Not found")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if not self.guard():
                return
            path = urlsplit(self.path).path.rstrip("/")
            m = re.fullmatch(r"/subjects/([^/]+)/versions", path)
            if not m:
                return self.error(404, 404, "Not found")
            try:
                request = json.loads(body)
                schema = request["schema"]
                json.loads(schema)
            except (ValueError, KeyError, TypeError) as e:
                return self.error(422, 42201, f"Invalid schema: {e}")
            if request.get("schemaType", "AVRO") != "AVRO":
                return self.error(422, 42201, "only AVRO schemas are kept here")
            try:
                self.reply(200, registry.register(unquote(m.group(1)), schema, request.get("id")))
            except ValueError as e:
                self.error(422, 42207, str(e))

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--user", help="NAME:PASSWORD required as HTTP basic auth")
    ap.add_argument("--fail-first", type=int, default=0, help="answer the first N requests with 503")
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    ap.add_argument("--tls-key", help="the certificate's key (PEM)")
    ap.add_argument("--schema", action="append", default=[], help="SUBJECT:ID:FILE to register at start")
    args = ap.parse_args()
    registry = Registry()
    for spec in args.schema:
        subject, sid, path = spec.split(":", 2)
        with open(path) as f:
            registry.register(subject, f.read(), int(sid))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(registry, args.user, args.fail_first))
    scheme = "http"
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    print(f"listening on {scheme}://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
