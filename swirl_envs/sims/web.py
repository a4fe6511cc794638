"""TextWeb: a generated shop with a cart, a checkout form and an inbox, seen as accessibility-tree text.

The state is the current page: its URL, title and numbered elements such as
`[5] textbox "Search" value=""` or `[9] button "Add to cart"`. Actions name an element by number:

  click [k]             a link navigates (the old page goes on the history); a button runs its form
  type [k] "text"       sets a textbox's value          select [k] "opt"   sets a combobox's value
  submit [k]            Enter in textbox k: runs the button of k's form
  back                  returns to the previous page as it was left (no-op with no history)

Forms: Search (query -> results page), Add to cart (quantity), Checkout -> Place order (name and
address required, shipping option) -> an order confirmation that echoes what was typed, and Reply on
a message. A page's header (home, search box, cart count, inbox) is on every page. Clicking static
text does nothing. On "hard" a sponsored banner with a random product rotates on every render: noise
no model can predict.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..transition import Transition
from .base import Simulator

CATALOGUE = {
    "Lighting": ("lamp", "lantern", "bulb", "sconce", "torch", "candle"),
    "Kitchen": ("kettle", "pan", "mug", "teapot", "whisk", "grater"),
    "Office": ("desk", "chair", "stapler", "notebook", "pen", "shelf"),
    "Garden": ("hose", "rake", "planter", "shovel", "bench", "hammock"),
    "Audio": ("speaker", "headset", "radio", "turntable", "microphone", "amplifier"),
}
ADJECTIVES = ("Blue", "Red", "Oak", "Steel", "Compact", "Vintage", "Green", "Silver", "Classic", "Large")
PRICES = range(5, 200)
PEOPLE = ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Ken Thompson",
          "Frances Allen", "Donald Knuth", "Radia Perlman", "John Backus")
STREETS = ("Elm St", "High St", "Mill Lane", "Park Ave", "Station Rd", "Church St", "Harbour Way")
SUBJECTS = ("Your order has shipped", "Weekly deals", "Password reset", "Invoice available", "Meeting moved",
            "Welcome aboard", "Review your purchase", "Delivery delayed")
REPLIES = ("Thanks!", "Got it, thank you.", "Please call me.", "Can you resend it?", "Sounds good.")
SITES = ("Acme Shop", "Nimbus Store", "Harbor Market", "Pixel Goods", "Juniper Outlet")


@dataclass(frozen=True)
class Level:
    categories: int
    per_category: int
    messages: int
    ads: bool  # a random sponsored banner on every page (unpredictable noise)
    noop_weight: float  # how often the policy clicks static text (a no-op)


LEVELS = {
    "easy": Level(2, 3, 2, False, 0.0),
    "medium": Level(3, 4, 4, False, 0.3),
    "hard": Level(5, 6, 8, True, 0.5),
}


@dataclass
class Product:
    id: int
    name: str
    category: str
    price: int


@dataclass
class Site:
    name: str
    domain: str
    categories: list[str]
    products: list[Product]
    messages: list[tuple[str, str, str]]  # sender, subject, body
    cart: dict[int, int] = field(default_factory=dict)  # product id -> quantity
    orders: int = 0


@dataclass
class Page:
    kind: str  # home, category, product, search, cart, checkout, order, inbox, message
    key: Any = None  # category name, product id, query, order number or message index
    fields: dict[str, str] = field(default_factory=dict)  # what was typed or selected here
    notice: str = ""  # the outcome of the last button on this page


# One element: role, label, the form field it edits (textbox/combobox) and what a click does
# (a (kind, key) page address for links, the button label for buttons, the options for comboboxes).
Element = tuple[str, str, str | None, Any]


def generate(rng: random.Random, level: Level) -> Site:
    name = rng.choice(SITES)
    categories = rng.sample(sorted(CATALOGUE), level.categories)
    products, k = [], level.per_category
    for category in categories:  # bulk draws (choices, a rotation): generation is most of an episode's cost
        start, nouns = rng.randrange(len(CATALOGUE[category])), CATALOGUE[category] * 2
        named = zip(rng.choices(ADJECTIVES, k=k), nouns[start:start + k], rng.choices(PRICES, k=k), strict=True)
        products += [Product(len(products) + j + 1, f"{adjective} {noun}", category, price)
                     for j, (adjective, noun, price) in enumerate(named)]
    senders = rng.choices(PEOPLE, k=level.messages)
    messages = [(sender, subject, f"Hello, this is about: {subject.lower()}.")
                for sender, subject in zip(senders, rng.sample(SUBJECTS, level.messages), strict=True)]
    return Site(name, name.lower().replace(" ", "") + ".example", categories, products, messages)


HEADER = 5  # elements every page starts with


def elements(site: Site, page: Page) -> tuple[str, str, list[Element]]:
    """The page's URL, title and elements, computed from the site's current state."""
    items = sum(site.cart.values())
    els: list[Element] = [("link", "Home", None, ("home", None)), ("textbox", "Search", "search", None),
                          ("button", "Search", None, "Search"), ("link", f"Cart ({items})", None, ("cart", None)),
                          ("link", "Inbox", None, ("inbox", None))]
    kind, key = page.kind, page.key
    if kind == "home":
        url, title = "/", "Home"
        els.append(("heading", f"Welcome to {site.name}", None, None))
        els += [("link", c, None, ("category", c)) for c in site.categories]
    elif kind == "category":
        url, title = f"/category/{key.lower()}", key
        els.append(("heading", key, None, None))
        els += [("link", f"{p.name} - ${p.price}", None, ("product", p.id))
                for p in site.products if p.category == key]
    elif kind == "product":
        p = site.products[key - 1]
        url, title = f"/product/{key}", p.name
        els += [("heading", p.name, None, None), ("text", f"Price: ${p.price}", None, None),
                ("link", p.category, None, ("category", p.category)),
                ("combobox", "Quantity", "quantity", ("1", "2", "3")), ("button", "Add to cart", None, "Add to cart")]
    elif kind == "search":
        hits = [p for p in site.products if key.lower() in p.name.lower()]
        url, title = "/search?q=" + key.replace(" ", "+"), f"Search: {key}"
        els.append(("heading", f"Results for '{key}'", None, None))
        els += [("link", f"{p.name} - ${p.price}", None, ("product", p.id)) for p in hits]
        if not hits:
            els.append(("text", "No products found", None, None))
    elif kind == "cart":
        url, title = "/cart", "Cart"
        els.append(("heading", "Your cart", None, None))
        for pid, qty in site.cart.items():
            p = site.products[pid - 1]
            els.append(("text", f"{p.name} x {qty} = ${p.price * qty}", None, None))
        if site.cart:
            els += [("text", f"Total: ${cart_total(site)}", None, None),
                    ("button", "Checkout", None, "Checkout")]
        else:
            els.append(("text", "Your cart is empty", None, None))
    elif kind == "checkout":
        url, title = "/checkout", "Checkout"
        els += [("heading", "Checkout", None, None), ("text", f"Total: ${cart_total(site)}", None, None),
                ("textbox", "Name", "name", None), ("textbox", "Address", "address", None),
                ("combobox", "Shipping", "shipping", ("standard", "express")),
                ("button", "Place order", None, "Place order")]
    elif kind == "order":
        number, name, address, shipping, total = key
        url, title = f"/order/{number}", f"Order {number}"
        els += [("heading", f"Order #{number} confirmed", None, None),
                ("text", f"Shipping to {name}, {address} ({shipping})", None, None),
                ("text", f"Total paid: ${total}", None, None)]
    elif kind == "inbox":
        url, title = "/inbox", "Inbox"
        els.append(("heading", "Inbox", None, None))
        els += [("link", f"{sender}: {subject}", None, ("message", i))
                for i, (sender, subject, _) in enumerate(site.messages)]
    else:  # message
        sender, subject, body = site.messages[key]
        url, title = f"/message/{key + 1}", subject
        els += [("heading", subject, None, None), ("text", f"From: {sender}", None, None),
                ("text", body, None, None), ("textbox", "Reply", "reply", None), ("button", "Send", None, "Send")]
    if page.notice:
        els.append(("status", page.notice, None, None))
    return "https://" + site.domain + url, f"{title} | {site.name}", els


def cart_total(site: Site) -> int:
    return sum(site.products[pid - 1].price * qty for pid, qty in site.cart.items())


def render(url: str, title: str, els: list[Element], fields: dict[str, str]) -> str:
    lines = [f"url: {url}", f"title: {title}"]
    for i, (role, label, name, extra) in enumerate(els, 1):
        if role == "textbox":
            lines.append(f'[{i}] textbox "{label}" value="{fields.get(name, "")}"')
        elif role == "combobox":
            lines.append(f'[{i}] combobox "{label}" value="{fields.get(name, extra[0])}" options={"|".join(extra)}')
        else:
            lines.append(f'[{i}] {role} "{label}"')
    return "\n".join(lines)


FORM_OF = {"search": "Search", "name": "Place order", "address": "Place order", "reply": "Send"}
NEEDS = {"Search": ("search",), "Place order": ("name", "address"), "Send": ("reply",)}


def press(site: Site, page: Page, button: str, history: list[Page]) -> Page:
    """Run a form's button; returns the page shown afterwards (the same object when it stays)."""
    f = page.fields
    if button == "Search":
        query = f.get("search", "").strip()
        if not query:
            page.notice = "Enter a search term"
            return page
        return navigate(page, ("search", query), history)
    if button == "Add to cart":
        qty = int(f.get("quantity", "1"))
        site.cart[page.key] = site.cart.get(page.key, 0) + qty
        page.notice = f"Added {qty} x {site.products[page.key - 1].name} to cart"
        return page
    if button == "Checkout":
        return navigate(page, ("checkout", None), history)
    if button == "Place order":
        missing = [label for label in ("name", "address") if not f.get(label, "").strip()]
        if missing:
            page.notice = f"{missing[0].capitalize()} is required"
            return page
        site.orders += 1
        number = 1000 + site.orders
        order = (number, f["name"], f["address"], f.get("shipping", "standard"), cart_total(site))
        site.cart.clear()
        return navigate(page, ("order", order), history)
    # Send
    text = f.get("reply", "").strip()
    page.notice = f"Reply sent: {text}" if text else "Reply is empty"
    f["reply"] = ""
    return page


def navigate(page: Page, target: tuple[str, Any], history: list[Page]) -> Page:
    history.append(page)
    page.notice = ""  # coming back shows the page as it was left, not the old status line
    return Page(*target)


def step(site: Site, page: Page, history: list[Page], els: list[Element], action: str) -> tuple[Page, bool]:
    """Apply an action to the current page; returns the page now shown and whether anything applied."""
    if action == "back":
        return (history.pop(), True) if history else (page, False)
    verb, _, rest = action.partition(" ")
    index, _, arg = rest.partition(" ")
    k = int(index.strip("[]")) - 1
    if not 0 <= k < len(els):
        return page, False
    role, _, name, extra = els[k]
    value = arg[1:-1]  # the quoted argument of type/select
    if verb == "click" and role == "link":
        return navigate(page, extra, history), True
    if verb == "click" and role == "button":
        return press(site, page, extra, history), True
    if verb == "type" and role == "textbox":
        page.fields[name] = value
        return page, True
    if verb == "select" and role == "combobox" and value in extra:
        page.fields[name] = value
        return page, True
    if verb == "submit" and role == "textbox":
        return press(site, page, FORM_OF[name], history), True
    return page, False


def sample_action(rng: random.Random, site: Site, page: Page, history: list[Page], els: list[Element],
                  level: Level) -> tuple[str, str, int]:
    """A plausible user: follows links, fills and submits forms, sometimes goes back or misclicks."""
    options, weights = [], []  # (verb, element number)
    filled = page.fields
    # A user who reached a form mostly finishes it rather than wandering off.
    leave = 0.2 if page.kind in ("checkout", "message") else 1.0
    for i, (role, _, name, extra) in enumerate(els, 1):
        header = i <= HEADER
        if role == "link":
            options.append(("click", i)), weights.append(0.5 * leave if header else 1.5)
        elif role == "button":  # pressing a button with its form unfilled is possible but rare
            ready = all(filled.get(need) for need in NEEDS.get(extra, ()))
            options.append(("click", i)), weights.append(3.0 if ready else 0.2)
        elif role == "textbox":
            options.append(("type", i)), weights.append((0.3 if filled.get(name) else 1.5) / (2 if header else 1))
            if filled.get(name):
                options.append(("submit", i)), weights.append(2.0)
        elif role == "combobox":
            options.append(("select", i)), weights.append(0.7)
        elif level.noop_weight:
            options.append(("click", i)), weights.append(level.noop_weight / 3)
    if history:
        options.append(("back", 0)), weights.append(leave)
    verb, i = rng.choices(options, weights)[0]
    if verb == "type":
        return f'type [{i}] "{typed_value(rng, site, els[i - 1][2])}"', verb, i
    if verb == "select":
        return f'select [{i}] "{rng.choice(els[i - 1][3])}"', verb, i
    return ("back" if verb == "back" else f"{verb} [{i}]"), verb, i


def typed_value(rng: random.Random, site: Site, name: str) -> str:
    if name == "search":  # usually a word from the catalogue, sometimes a miss
        return rng.choice(rng.choice(site.products).name.split()).lower() if rng.random() < 0.8 else "unicorn"
    if name == "name":
        return rng.choice(PEOPLE)
    if name == "address":
        return f"{rng.randrange(1, 200)} {rng.choice(STREETS)}"
    return rng.choice(REPLIES)


class TextWeb(Simulator):
    name: ClassVar[str] = "textweb"
    version: ClassVar[str] = "1"
    primary_metric: ClassVar[str] = "fwm/bleu"
    action_meta_keys: ClassVar[tuple[str, ...]] = ("action_type", "element", "role", "label", "valid")

    def observe(self, rng: random.Random, site: Site, page: Page) -> tuple[str, list[Element]]:
        url, title, els = elements(site, page)
        if LEVELS[self.difficulty].ads:
            els.append(("text", f"Sponsored: {rng.choice(site.products).name}", None, None))
        return render(url, title, els, page.fields), els

    def episode(self, rng: random.Random, episode_id: str,
                override: tuple[int, Sequence[str]] | None = None) -> list[Transition]:
        level = LEVELS[self.difficulty]
        site, page, history = generate(rng, level), Page("home"), []
        state, els = self.observe(rng, site, page)
        out = []
        for t in range(self.episode_length):
            action, kind, index = sample_action(rng, site, page, history, els, level)
            role, label = els[index - 1][:2] if index else (None, None)
            meta = {"difficulty": self.difficulty, "action_type": kind, "element": index or None, "role": role,
                    "label": label, "page": page.kind}
            if override is not None and t == override[0]:
                drawn, branches = rng.getstate(), []
                for other in override[1]:  # each on its own copy of the site and pages, with the same draws ahead
                    rng.setstate(drawn)
                    branches.append(self.advance(rng, *copy.deepcopy((site, page, history)), els, state, other,
                                                 dict(meta), episode_id, t)[0])
                return out + branches
            transition, page, els = self.advance(rng, site, page, history, els, state, action, meta, episode_id, t)
            out.append(transition)
            state = transition.next_state
        return out

    def advance(self, rng: random.Random, site: Site, page: Page, history: list[Page], els: list[Element],
                state: str, action: str, meta: dict, episode_id: str, t: int
                ) -> tuple[Transition, Page, list[Element]]:
        """Take `action` on `page` (the site and history change in place): the transition from `state`,
        the page now shown and its elements."""
        try:
            page, applied = step(site, page, history, els, action)
        except (ValueError, IndexError, KeyError):  # not an action of this site's grammar: nothing happens
            applied = False
        next_state, els = self.observe(rng, site, page)
        meta.update(valid=applied, next_page=page.kind, cart_items=sum(site.cart.values()))
        return Transition(state, next_state, action, episode_id, t, meta), page, els

    def candidate_actions(self, transition: Transition) -> list[str]:
        """The generator's support on this page (`sample_action`), widened where the page cannot tell: a
        search types any word of the whole catalogue (the site's other products are not on the page), and
        `back` is always a candidate (the history is not on the page either). Typed text is unbounded in
        the grammar, so it ranges over what `typed_value` draws."""
        fields, out = self.parse_state(transition.state), []
        misclicks = LEVELS[self.difficulty].noop_weight > 0
        for key, element in fields.items():
            if not ELEMENT_KEY.fullmatch(key):
                continue
            role, label = ELEMENT.fullmatch(element).groups()
            if role in ("link", "button") or (misclicks and role not in ("textbox", "combobox")):
                out.append(f"click {key}")
            elif role == "textbox":
                out += [f'type {key} "{value}"' for value in TYPED[label]]
                if fields[f"{key} value"]:  # a user submits what they typed
                    out.append(f"submit {key}")
            elif role == "combobox":
                out += [f'select {key} "{option}"' for option in fields[f"{key} options"].split("|")]
        return [*out, "back"]

    def parse_state(self, text: str) -> dict[str, str] | None:
        """Fields `url`, `title`, and per element `[k]` (role and label), `[k] value` and `[k] options`."""
        lines = text.strip().splitlines()
        if len(lines) < 2 or not lines[0].startswith("url: ") or not lines[1].startswith("title: "):
            return None
        fields = {"url": lines[0][5:], "title": lines[1][7:]}
        for k, line in enumerate(lines[2:], 1):
            match = next((m for m in (pattern.fullmatch(line.strip()) for pattern in LINES) if m), None)
            if match is None or match["k"] != str(k):
                return None
            fields[f"[{k}]"] = f'{match["role"]} "{match["label"]}"'
            fields.update({f"[{k}] {key}": match[key] for key in ("value", "options")
                           if key in match.re.groupindex})
        return fields


# What `render` writes, for reading a page back: a form field, a combobox, any other element.
LINES = [re.compile(r'\[(?P<k>\d+)\] (?P<role>textbox) "(?P<label>[^"]*)" value="(?P<value>.*)"'),
         re.compile(r'\[(?P<k>\d+)\] (?P<role>combobox) "(?P<label>[^"]*)" value="(?P<value>.*)" '
                    r'options=(?P<options>\S+)'),
         re.compile(r'\[(?P<k>\d+)\] (?P<role>(?!textbox |combobox )\w+) "(?P<label>.*)"')]
ELEMENT_KEY, ELEMENT = re.compile(r"\[\d+\]"), re.compile(r'(\w+) "(.*)"')
# What `typed_value` can type into each textbox (by label); a search, any word of the catalogue or a miss.
TYPED = {"Search": sorted({w.lower() for names in (ADJECTIVES, *CATALOGUE.values()) for w in names} | {"unicorn"}),
         "Name": PEOPLE, "Address": [f"{n} {street}" for n in range(1, 200) for street in STREETS],
         "Reply": REPLIES}
