#!/usr/bin/env python3
"""Replay one fixed REST request sequence against a backend and write a transcript.

Shop's gateway answers the old Django backend's REST routes under /api/. This
script plays the same sequence of requests (every route and method of the old
urls.py files, every query parameter, and the usual refusals) against either
backend; the two transcripts are then compared step by step. Each step records
its stable name, method, path template (run-specific ids/slugs/words replaced
by {id}, {slug}, {word}), HTTP status and the *shape* of the JSON body (a type
skeleton: values differ between backends, shapes must not). A few steps also
record "values" that both backends must agree on exactly (refusal messages,
filtered counts, cart/wishlist messages, order of run products as p1/p2/p3).

Standard library only. Every run uses fresh usernames, category names and a
random search word, and filters listings by its own category, so repeated runs
on the same database give the same transcript. Redirects are not followed.

  python3 tests/rest-replay/replay.py --base http://127.0.0.1:8000 \
      --admin-username admin_x1 --admin-password 'Very-Secret-99' [--out t.json]

On Django, registering with is_admin=true creates the admin (so the admin name
must be new there); on Shop that is refused and the admin must already exist.
"""
import argparse, json, re, struct, sys, urllib.error, urllib.request, uuid, zlib
from urllib.parse import urlparse

UNKNOWN = 999999999  # an id that exists on neither backend


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # urllib then raises HTTPError carrying the 3xx as is


OPENER = urllib.request.build_opener(NoRedirect)


def shape(v):
    if isinstance(v, dict):
        return {k: shape(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    if v is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(type(v), type(v).__name__)


def png_bytes():
    """A valid 2x2 RGB PNG, built by hand."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def multipart(field, filename, ctype, content):
    boundary = "replay" + uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Replay:
    def __init__(self, base):
        self.base, self.steps = base.rstrip("/"), []

    def call(self, step, method, tmpl, token=None, json_body=None, form=None, values=None, **fmt):
        headers, data = {"Accept": "application/json"}, None
        if json_body is not None:
            data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        elif form is not None:
            data, headers["Content-Type"] = form
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.base + tmpl.format(**fmt), data=data, method=method, headers=headers)
        try:
            with OPENER.open(req, timeout=60) as r:
                status, ctype, raw, location = r.status, r.headers.get("Content-Type", ""), r.read(), None
        except urllib.error.HTTPError as e:
            status, ctype, raw = e.code, e.headers.get("Content-Type", ""), e.read()
            location = e.headers.get("Location")
        body, rec = None, {"step": step, "method": method, "path": tmpl, "status": status}
        if 300 <= status < 400:  # redirects: status and target only, no body shape
            rec["shape"], rec["values"] = None, {"location": urlparse(location or "").path}
        else:
            if not raw.strip():
                rec["shape"] = "empty"
            elif "json" in ctype:
                body = json.loads(raw)
                rec["shape"] = shape(body)
            else:
                rec["shape"] = "html" if "html" in ctype else "text"
            if values is not None:
                try:
                    rec["values"] = values(body)
                except Exception:  # a different answer: record that the values were not there
                    rec["values"] = None
        self.steps.append(rec)
        return body if isinstance(body, (dict, list)) else {}


def detail(b):
    return {"detail": b["detail"]}


def label(title):
    """Run products are titled '<word> ... [pN]'; reduce a title to its pN."""
    m = re.search(r"\[(p\d)\]", title or "")
    return m.group(1) if m else "other"


def labels(b):
    return {"count": b["count"], "results": [label(p["title"]) for p in b["results"]]}


def run(base, admin_user, admin_pass):
    R, sfx = Replay(base), uuid.uuid4().hex[:10]
    word, cust, cpw = f"rw{sfx}", f"cust_{sfx}", "tulip-Orbit-42"
    P, C = "/api/products/", "/api/products/categories/"

    # --- auth
    R.call("auth.register_customer", "POST", "/api/auth/register/",
           json_body={"username": cust, "email": f"{cust}@example.com", "password": cpw, "password2": cpw})
    R.call("auth.register_password_mismatch", "POST", "/api/auth/register/",
           json_body={"username": f"bad_{sfx}", "email": f"bad_{sfx}@example.com",
                      "password": cpw, "password2": cpw + "x"}, values=lambda b: b)
    R.call("auth.register_admin", "POST", "/api/auth/register/",
           json_body={"username": admin_user, "email": f"{admin_user}@example.com", "password": admin_pass,
                      "password2": admin_pass, "is_admin": True})
    adm = R.call("auth.login_admin", "POST", "/api/auth/login/",
                 json_body={"username": admin_user, "password": admin_pass}).get("access")
    tokens = R.call("auth.login_customer", "POST", "/api/auth/login/", json_body={"username": cust, "password": cpw})
    cus = tokens.get("access")
    R.call("auth.login_wrong_password", "POST", "/api/auth/login/",
           json_body={"username": cust, "password": cpw + "x"}, values=detail)
    R.call("auth.login_get_405", "GET", "/api/auth/login/", values=detail)
    R.call("auth.refresh", "POST", "/api/auth/refresh/", json_body={"refresh": tokens.get("refresh")})
    R.call("auth.refresh_garbage", "POST", "/api/auth/refresh/", json_body={"refresh": "garbage"}, values=detail)

    # --- categories
    cat = R.call("categories.create", "POST", C, adm, {"name": f"Cat {sfx} A", "slug": f"cat-{sfx}-a"})
    cid, slug = cat.get("id", 0), cat.get("slug", "")
    cid2 = R.call("categories.create_second", "POST", C, adm, {"name": f"Cat {sfx} B"}).get("id", 0)
    R.call("categories.create_no_token", "POST", C, None, {"name": f"Cat {sfx} C"}, values=detail)
    R.call("categories.create_customer", "POST", C, cus, {"name": f"Cat {sfx} D"}, values=detail)
    R.call("categories.list", "GET", C)
    R.call("categories.retrieve", "GET", C + "{id}/", id=cid)
    R.call("categories.put", "PUT", C + "{id}/", adm, {"name": f"Cat {sfx} B2", "slug": f"cat-{sfx}-b2"}, id=cid2)
    R.call("categories.patch", "PATCH", C + "{id}/", adm, {"name": f"Cat {sfx} B3"}, id=cid2)
    R.call("categories.retrieve_unknown", "GET", C + "{id}/", values=detail, id=UNKNOWN)
    R.call("categories.delete", "DELETE", C + "{id}/", adm, id=cid2)

    # --- products
    def product(n, price, in_title=True, **extra):
        title = f"{word} lamp [p{n}]" if in_title else f"Plain lamp [p{n}]"
        desc = f"A lamp, {word} edition." if not in_title else "A lamp."
        return {"title": title, "description": desc, "price": price, "stock": 5 * n, "category_id": cid, **extra}
    ids = [R.call(f"products.create_p{n}", "POST", P, adm, product(n, price, n != 3)).get("id", 0)
           for n, price in ((1, "10.50"), (2, "20.00"), (3, "30.25"))]
    p1, p2, p3 = ids
    R.call("products.create_bad_stock", "POST", P, adm, product(4, "1.00", stock="many"))
    R.call("products.create_unknown_category", "POST", P, adm, product(4, "1.00", category_id=UNKNOWN))
    R.call("products.list_category", "GET", P + "?category={slug}", values=labels, slug=slug)
    R.call("products.list_search", "GET", P + "?search={word}", values=labels, word=word)
    R.call("products.list_price_range", "GET", P + "?category={slug}&min_price=20&max_price=30.25",
           values=labels, slug=slug)
    R.call("products.list_ordering_desc", "GET", P + "?category={slug}&ordering=-price", values=labels, slug=slug)
    R.call("products.list_ordering_asc", "GET", P + "?category={slug}&ordering=price", values=labels, slug=slug)
    R.call("products.list_page2", "GET", P + "?category={slug}&ordering=price&page=2&page_size=2", slug=slug,
           values=lambda b: {**labels(b), "next": b["next"] is not None, "previous": b["previous"] is not None})
    R.call("products.list_page_past_end", "GET", P + "?category={slug}&page=3&page_size=2",
           values=detail, slug=slug)
    R.call("products.retrieve", "GET", P + "{id}/", id=p1)
    R.call("products.retrieve_unknown", "GET", P + "{id}/", values=detail, id=UNKNOWN)
    R.call("products.put", "PUT", P + "{id}/", adm, product(1, "12.00", title=f"{word} lamp deluxe [p1]"), id=p1)
    R.call("products.patch", "PATCH", P + "{id}/", adm, {"stock": 7}, id=p1,
           values=lambda b: {"stock": b["stock"], "title": label(b["title"])})
    R.call("products.patch_customer", "PATCH", P + "{id}/", cus, {"stock": 1}, values=detail, id=p1)
    R.call("products.upload_image", "PATCH", P + "{id}/", adm, form=multipart("image", "dot.png", "image/png",
           png_bytes()), id=p1, values=lambda b: {"image_set": bool(b["image"])})
    R.call("products.upload_not_image", "PATCH", P + "{id}/", adm, form=multipart("image", "notes.txt",
           "text/plain", b"this is not an image\n"), id=p1)
    R.call("products.list_no_trailing_slash", "GET", "/api/products")
    R.call("products.list_after_upload", "GET", P + "?category={slug}&ordering=price",
           values=labels, slug=slug)

    # --- cart and orders
    R.call("cart.get_no_token", "GET", "/api/cart/", values=detail)
    R.call("cart.get_bad_token", "GET", "/api/cart/", "garbage.token.here", values=detail)
    R.call("cart.get_empty", "GET", "/api/cart/", cus, values=lambda b: {"items": len(b["items"])})
    msg = lambda b: b  # noqa: E731 - the whole small answer ({"message"} / {"error"}) must match
    R.call("cart.add", "POST", "/api/cart/add/", cus, {"product_id": p1, "quantity": 2}, values=msg)
    R.call("cart.add_same_again", "POST", "/api/cart/add/", cus, {"product_id": p1, "quantity": 1}, values=msg)
    R.call("cart.add_default_quantity", "POST", "/api/cart/add/", cus, {"product_id": p2}, values=msg)
    R.call("cart.add_unknown_product", "POST", "/api/cart/add/", cus, {"product_id": UNKNOWN, "quantity": 1},
           values=msg)
    R.call("cart.add_missing_product_id", "POST", "/api/cart/add/", cus, {"quantity": 1}, values=msg)
    R.call("cart.add_get_405", "GET", "/api/cart/add/", cus, values=detail)
    R.call("cart.get", "GET", "/api/cart/", cus,
           values=lambda b: {"items": sorted([label(i["product"]), i["quantity"]] for i in b["items"])})
    R.call("cart.checkout_no_token", "POST", "/api/cart/checkout/", None, {}, values=detail)
    R.call("cart.checkout", "POST", "/api/cart/checkout/", cus, {}, values=lambda b: {"message": b["message"]})
    R.call("cart.checkout_empty", "POST", "/api/cart/checkout/", cus, {}, values=msg)
    R.call("cart.get_after_checkout", "GET", "/api/cart/", cus, values=lambda b: {"items": len(b["items"])})
    R.call("orders.list_no_token", "GET", "/api/orders/", values=detail)
    R.call("orders.list", "GET", "/api/orders/", cus, values=lambda b: {
        "orders": len(b), "total_price": round(float(b[0]["total_price"]), 2),
        "items": sorted([label(i["product"]), i["quantity"]] for i in b[0]["items"])})

    # --- wishlist
    R.call("wishlist.get_no_token", "GET", "/api/wishlist/", values=detail)
    R.call("wishlist.add", "POST", "/api/wishlist/", cus, {"product_id": p2}, values=msg)
    R.call("wishlist.get", "GET", "/api/wishlist/", cus, values=lambda b: {"products": [label(t) for t in b["products"]]})
    R.call("wishlist.remove", "DELETE", "/api/wishlist/", cus, {"product_id": p2}, values=msg)
    R.call("wishlist.get_after_remove", "GET", "/api/wishlist/", cus, values=lambda b: b)
    R.call("wishlist.add_unknown_product", "POST", "/api/wishlist/", cus, {"product_id": UNKNOWN}, values=msg)

    # --- admin sales report
    rep = P + "reports/products/"
    R.call("report.admin", "GET", rep, adm)
    R.call("report.most_sold", "GET", rep + "?sort=most_sold", adm)
    sold = lambda b: [[label(r["product"]), r["sold"]] for r in b]  # noqa: E731
    R.call("report.category_most_sold", "GET", rep + "?category={slug}&sort=most_sold", adm, values=sold, slug=slug)
    R.call("report.category_least_sold", "GET", rep + "?category={slug}&sort=least_sold", adm, values=sold,
           slug=slug)
    R.call("report.customer", "GET", rep, cus, values=detail)
    R.call("report.no_token", "GET", rep, values=detail)

    # --- delete
    R.call("products.delete_customer", "DELETE", P + "{id}/", cus, values=detail, id=p3)
    R.call("products.delete", "DELETE", P + "{id}/", adm, id=p3)
    R.call("products.retrieve_deleted", "GET", P + "{id}/", values=detail, id=p3)
    R.call("products.list_category_after_delete", "GET", P + "?category={slug}", values=labels, slug=slug)
    return R.steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--admin-username", required=True)
    ap.add_argument("--admin-password", required=True)
    ap.add_argument("--out")
    a = ap.parse_args()
    text = json.dumps(run(a.base, a.admin_username, a.admin_password), indent=1) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
