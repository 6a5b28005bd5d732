"""WEB-VIEW: the controller's API on os-ken's WSGI stack (eventlet.wsgi + WebOb):
each request reaches `handle` and comes back as JSON with its status; a bug in a handler
is a 500, not a dead controller. No socket: WebOb drives the WSGI application."""

from __future__ import annotations

from webob import Request

from controllers.api import wsgi_app


class App:
    def status_doc(self) -> dict:
        return {"routers": {}}

    def nat_view(self, router=None, fresh=True, limit=None):
        raise RuntimeError("a bug")


def test_api_wsgi_answers_json_with_the_status_handle_gives():
    wsgi = wsgi_app(App())
    r = Request.blank("/status").get_response(wsgi)
    assert r.status_int == 200 and r.content_type == "application/json"
    assert r.json == {"routers": {}}
    r = Request.blank("/nowhere").get_response(wsgi)
    assert r.status_int == 404 and "no such endpoint: GET /nowhere" in r.json["error"]
    r = Request.blank("/nat/r1/wan?mapping=bogus", method="POST").get_response(wsgi)
    assert r.status_int == 400 and "mapping: one of" in r.json["error"]
    r = Request.blank("/nat?stats=0").get_response(wsgi)
    assert r.status_int == 500 and r.json == {"error": "RuntimeError: a bug"}
