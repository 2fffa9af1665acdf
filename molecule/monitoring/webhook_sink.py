"""The lab's webhook receiver: appends each POSTed Alertmanager notification (JSON) as one line to a file.
Usage: python3 smc-lab-webhook-sink.py ADDRESS PORT FILE"""
import http.server
import json
import sys


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            doc = json.loads(body)
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        with open(sys.argv[3], "a", encoding="utf-8") as f:
            f.write(json.dumps(doc, sort_keys=True) + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Sink).serve_forever()
