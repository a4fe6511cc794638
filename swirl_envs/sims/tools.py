"""ToolSim: five simulated APIs (weather, currency, units, calendar, an inventory/orders database).

The action is one JSON tool call in a canonical form (see `canonical_call`):
    {"name": "get_weather", "arguments": {"city": "Oslo"}}
The state is what an agent sees: its task, the world's visible facts (weather, exchange rates,
stock, calendar, orders; they change as calls place orders or add events) and the numbered log of
tool responses so far. The next state is the state with its facts updated and the new response
appended, so the call itself never appears in Y and has to be inferred from its effects.

Rules: arguments are checked against each function's JSON schema (missing, unexpected, wrongly
typed or out-of-enum arguments give an error response), then the world answers or raises a domain
error (unknown city/currency/item/order, out of stock, calendar conflict, bad date). Arithmetic is
decimal: a currency rate is (to per USD) / (from per USD) rounded to 4 places and the result is
amount x rate rounded to cents; units convert through a base unit, rounded to 3 places; prices and
order totals are exact cents.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

from ..transition import Transition
from .base import Simulator


def fn(description: str, required: dict[str, dict], optional: dict[str, dict] | None = None) -> dict:
    props = {**required, **(optional or {})}
    return {"description": description,
            "parameters": {"type": "object", "properties": props, "required": list(required)}}


S, N, INT = {"type": "string"}, {"type": "number"}, {"type": "integer"}
DATE, TIME = {"type": "string", "description": "YYYY-MM-DD"}, {"type": "string", "description": "HH:MM"}
UNITS = {"m": ("length", Decimal(1)), "km": ("length", Decimal(1000)), "mi": ("length", Decimal("1609.344")),
         "ft": ("length", Decimal("0.3048")), "kg": ("mass", Decimal(1)), "g": ("mass", Decimal("0.001")),
         "lb": ("mass", Decimal("0.45359237")), "l": ("volume", Decimal(1)), "gal": ("volume", Decimal("3.785411784"))}
UNITS_OF = {kind: [u for u, (k, _) in UNITS.items() if k == kind] for kind in ("length", "mass", "volume")}

# Function schemas in the OpenAI/JSON-schema style; API_OF groups them into the five APIs.
TOOLS: dict[str, dict] = {
    "get_weather": fn("Current weather in a city", {"city": S},
                      {"unit": {"type": "string", "enum": ["C", "F"]}}),
    "convert_currency": fn("Convert an amount between currencies", {"amount": N, "from_currency": S,
                                                                     "to_currency": S}),
    "convert_units": fn("Convert a quantity between units", {"value": N, "from_unit": {**S, "enum": list(UNITS)},
                                                             "to_unit": {**S, "enum": list(UNITS)}}),
    "add_event": fn("Add a calendar event", {"title": S, "date": DATE, "time": TIME},
                    {"duration_minutes": INT}),
    "list_events": fn("Calendar events on a date", {"date": DATE}),
    "check_stock": fn("Stock and unit price of an item", {"item": S}),
    "place_order": fn("Order an item from stock", {"item": S, "quantity": INT}),
    "get_order": fn("Look up an order", {"order_id": S}),
    "cancel_order": fn("Cancel a placed order and restock it", {"order_id": S}),
}
API_OF = {"get_weather": "weather", "convert_currency": "currency", "convert_units": "units",
          "add_event": "calendar", "list_events": "calendar", "check_stock": "inventory",
          "place_order": "inventory", "get_order": "inventory", "cancel_order": "inventory"}

CITIES = ("Oslo", "Lima", "Tokyo", "Nairobi", "Madrid", "Toronto", "Sydney", "Cairo", "Hanoi", "Reykjavik")
CONDITIONS = ("sunny", "cloudy", "rain", "snow", "windy", "fog")
CURRENCIES = {"EUR": "0.92", "GBP": "0.79", "JPY": "149.5", "NOK": "10.53", "CHF": "0.88", "INR": "83.1",
              "BRL": "4.97", "CAD": "1.35", "KES": "131.2"}
ITEMS = ("lamp", "desk", "chair", "monitor", "keyboard", "stapler", "kettle", "headset", "notebook", "cable")
TITLES = ("Standup", "Dentist", "Lunch with Sam", "Flight", "Team review", "Gym", "Call with bank", "Dinner")
CELSIUS, HUMIDITY, CENTS = range(-15, 36), range(20, 100, 5), range(200, 20000)
HOURS = tuple(f"{h:02d}:00" for h in range(8, 20))
MUTATING = ("add_event", "place_order", "cancel_order")
AMOUNTS, VALUES, DURATIONS = (10, 20, 50, 100, 250, 1000, 12.5, 99.99), (1, 2, 5, 10, 42, 100, 2.5), (30, 45, 60, 120)
UNKNOWN = {"city": "Atlantis", "from_currency": "XYZ", "to_currency": "ABC", "item": "unicorn", "date": "next friday",
           "time": "noon", "order_id": "ORD-9999", "quantity": 99, "from_unit": "parsec"}  # the policy's bad values
CENT, RATE, MILLI = Decimal("0.01"), Decimal("0.0001"), Decimal("0.001")


@dataclass(frozen=True)
class Level:
    functions: tuple[str, ...]
    cities: int
    currencies: int  # besides USD
    items: int
    events: int
    bad_rate: float  # share of calls the policy gets wrong


LEVELS = {
    "easy": Level(("get_weather", "convert_currency", "convert_units", "add_event", "check_stock"),
                  3, 2, 3, 1, 0.05),
    "medium": Level(tuple(TOOLS)[:8], 5, 4, 5, 2, 0.1),
    "hard": Level(tuple(TOOLS), 8, 7, 8, 4, 0.2),
}


class ToolError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class World:
    today: date
    week: tuple[str, ...]  # today and the six days after it, as YYYY-MM-DD
    functions: tuple[str, ...]
    weather: dict[str, tuple[str, int, int]]  # city -> condition, temperature C, humidity %
    rates: dict[str, Decimal]  # units of the currency per 1 USD
    stock: dict[str, list]  # item -> [count, unit price]
    events: list[tuple[str, str, str, int]] = field(default_factory=list)  # date, time, title, minutes
    orders: dict[str, dict] = field(default_factory=dict)


def canonical_call(name: str, arguments: dict[str, Any]) -> str:
    """The one serialisation of a call: "name" then "arguments" (keys sorted), json.dumps defaults
    otherwise (", " and ": " separators) and ensure_ascii=False."""
    return ENCODE({"name": name, "arguments": dict(sorted(arguments.items()))})


def dump(response: dict) -> str:
    return ENCODE(response)


# json.dumps builds a new encoder on every call once an option differs from its defaults; keep one.
ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def money(value: Decimal) -> float:
    return float(value.quantize(CENT, ROUND_HALF_UP))


def check_arguments(name: str, args: dict[str, Any]) -> None:
    params = TOOLS[name]["parameters"]
    for key in params["required"]:
        if key not in args:
            raise ToolError("missing_argument", f"missing required argument '{key}'")
    for key, value in args.items():
        spec = params["properties"].get(key)
        if spec is None:
            raise ToolError("unexpected_argument", f"unexpected argument '{key}'")
        kind = spec["type"]
        ok = (isinstance(value, str) if kind == "string" else not isinstance(value, bool) and (
            isinstance(value, int) if kind == "integer" else isinstance(value, int | float)))
        if not ok:
            raise ToolError("invalid_type", f"argument '{key}' must be of type {kind}, got {json_type(value)}")
        if "enum" in spec and value not in spec["enum"]:
            raise ToolError("invalid_value", f"argument '{key}' must be one of {', '.join(spec['enum'])}")


def json_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null",
            list: "array", dict: "object"}.get(type(value), type(value).__name__)


def parse_date(text: str) -> str:
    try:
        day = date.fromisoformat(text).isoformat()
    except ValueError:
        day = None
    if day != text:  # fromisoformat also takes "20250314" and other ISO forms; the API does not
        raise ToolError("invalid_value", f"date '{text}' is not in YYYY-MM-DD form")
    return day


def lookup(table: dict, key: str, what: str):
    if key not in table:
        raise ToolError("not_found", f"unknown {what} '{key}'")
    return table[key]


def execute(world: World, name: str, args: dict[str, Any]) -> dict:
    """Run one validated call against the world (which it may change); domain errors raise ToolError."""
    if name == "get_weather":
        condition, celsius, humidity = lookup(world.weather, args["city"], "city")
        unit = args.get("unit", "C")
        temperature = celsius if unit == "C" else int((Decimal(celsius) * 9 / 5 + 32).quantize(1, ROUND_HALF_UP))
        return {"city": args["city"], "condition": condition, "temperature": temperature, "unit": unit,
                "humidity": humidity}
    if name == "convert_currency":
        source = lookup(world.rates, args["from_currency"], "currency")
        target = lookup(world.rates, args["to_currency"], "currency")
        rate = (target / source).quantize(RATE, ROUND_HALF_UP)
        return {"amount": args["amount"], "from": args["from_currency"], "to": args["to_currency"],
                "rate": float(rate), "result": money(Decimal(str(args["amount"])) * rate)}
    if name == "convert_units":
        (kind, source), (target_kind, target) = UNITS[args["from_unit"]], UNITS[args["to_unit"]]
        if kind != target_kind:
            raise ToolError("invalid_value", f"cannot convert {kind} ({args['from_unit']}) to "
                                             f"{target_kind} ({args['to_unit']})")
        result = (Decimal(str(args["value"])) * source / target).quantize(MILLI, ROUND_HALF_UP)
        return {"value": args["value"], "from": args["from_unit"], "to": args["to_unit"], "result": float(result)}
    if name == "add_event":
        day, time = parse_date(args["date"]), args["time"]
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", time):
            raise ToolError("invalid_value", f"time '{time}' is not in HH:MM form")
        if any(e[0] == day and e[1] == time for e in world.events):
            raise ToolError("conflict", f"another event is already at {day} {time}")
        minutes = args.get("duration_minutes", 60)
        if minutes <= 0:
            raise ToolError("invalid_value", "argument 'duration_minutes' must be positive")
        world.events.append((day, time, args["title"], minutes))
        world.events.sort()
        return {"status": "created", "event_id": f"evt-{len(world.events)}", "date": day, "time": time,
                "title": args["title"], "duration_minutes": minutes}
    if name == "list_events":
        day = parse_date(args["date"])
        return {"date": day, "events": [{"time": t, "title": title, "duration_minutes": m}
                                        for d, t, title, m in world.events if d == day]}
    if name == "check_stock":
        count, price = lookup(world.stock, args["item"], "item")
        return {"item": args["item"], "in_stock": count, "unit_price": money(price)}
    if name == "place_order":
        entry, quantity = lookup(world.stock, args["item"], "item"), args["quantity"]
        if quantity < 1:
            raise ToolError("invalid_value", "argument 'quantity' must be at least 1")
        if quantity > entry[0]:
            raise ToolError("out_of_stock", f"only {entry[0]} of '{args['item']}' in stock")
        entry[0] -= quantity
        order_id = f"ORD-{1001 + len(world.orders)}"
        world.orders[order_id] = {"order_id": order_id, "item": args["item"], "quantity": quantity,
                                  "total": money(entry[1] * quantity), "status": "placed"}
        return dict(world.orders[order_id])
    order = lookup(world.orders, args["order_id"], "order")
    if name == "cancel_order":
        if order["status"] == "cancelled":
            raise ToolError("invalid_state", f"order {args['order_id']} is already cancelled")
        order["status"] = "cancelled"
        world.stock[order["item"]][0] += order["quantity"]
    return dict(order)


def respond(world: World, call: str) -> dict:
    """The API's JSON response to a call string: a result, or {"error": {"code", "message"}}."""
    try:
        parsed = json.loads(call)
    except json.JSONDecodeError as exc:
        return {"error": {"code": "invalid_json", "message": f"call is not valid JSON: {exc.msg}"}}
    if not isinstance(parsed, dict) or not isinstance(parsed.get("name"), str) \
            or not isinstance(parsed.get("arguments", {}), dict):
        return {"error": {"code": "invalid_request", "message": 'a call is {"name": string, "arguments": object}'}}
    return answer(world, parsed["name"], parsed.get("arguments", {}))


def called_name(call: str) -> str:
    """The function a call string names ('' when it names none)."""
    try:
        name = json.loads(call).get("name", "")
    except (ValueError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


def answer(world: World, name: str, args: dict[str, Any]) -> dict:
    """`respond` for an already parsed call."""
    try:
        if name not in world.functions:
            raise ToolError("unknown_function", f"no function named '{name}'")
        check_arguments(name, args)
        return execute(world, name, args)
    except ToolError as exc:
        return {"error": {"code": exc.code, "message": str(exc)}}


def new_world(rng: random.Random, level: Level) -> World:
    # Bulk draws (one per field, not per entity): building the world is a large part of an episode's cost.
    today = date(2025, 1, 1) + timedelta(days=rng.randrange(365))
    cities, n = rng.sample(CITIES, level.cities), level.cities
    weather = {city: (condition, min(celsius, 1) if condition == "snow" else celsius, humidity)
               for city, condition, celsius, humidity in zip(cities, rng.choices(CONDITIONS, k=n),
                                                             rng.choices(CELSIUS, k=n), rng.choices(HUMIDITY, k=n),
                                                             strict=True)}
    rates = {"USD": Decimal(1)} | {c: Decimal(CURRENCIES[c]) for c in rng.sample(sorted(CURRENCIES), level.currencies)}
    items, n = rng.sample(ITEMS, level.items), level.items
    stock = {item: [count, Decimal(cents).scaleb(-2)]
             for item, count, cents in zip(items, rng.choices(range(10), k=n), rng.choices(CENTS, k=n), strict=True)}
    week, n = tuple((today + timedelta(days=d)).isoformat() for d in range(7)), level.events
    events = sorted(zip(rng.choices(week, k=n), rng.choices(HOURS[:10], k=n), rng.choices(TITLES, k=n),
                        rng.choices((30, 60, 90), k=n), strict=True))
    return World(today, week, level.functions, weather, rates, stock, events)


def facts(world: World) -> str:
    """The changing facts (stock, calendar, orders); the static ones are rendered once per episode."""
    stock = "; ".join(f"{item} {count} at ${price}" for item, (count, price) in world.stock.items())
    events = "; ".join(f"{d} {t} {title} ({m} min)" for d, t, title, m in world.events) or "(empty)"
    orders = "; ".join(f"{o['order_id']} {o['item']} x{o['quantity']} {o['status']}"
                       for o in world.orders.values()) or "(none)"
    return f"stock: {stock}\ncalendar: {events}\norders: {orders}"


def header(world: World, task: str) -> str:
    weather = "; ".join(f"{c} {w[0]} {w[1]}C humidity {w[2]}%" for c, w in world.weather.items())
    rates = ", ".join(f"{c} {r}" for c, r in world.rates.items() if c != "USD")
    return (f"task: {task}\ntoday: {world.today.isoformat()}\ntools: {', '.join(world.functions)}\n"
            f"weather: {weather}\nrates per 1 USD: {rates}\n")


def sample_call(rng: random.Random, world: World, level: Level,
                focus: dict[str, str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A plausible call (arguments drawn from what the agent can see, biased to its task), or a flawed one."""
    name = rng.choice(world.functions)
    if name in ("get_order", "cancel_order") and not world.orders:
        name = "place_order"  # nothing to look up yet

    def pick(key: str, options: Sequence) -> Any:
        return focus[key] if rng.random() < 0.6 else rng.choice(options)

    if name == "get_weather":
        args: dict[str, Any] = {"city": pick("city", list(world.weather))}
        if rng.random() < 0.3:
            args["unit"] = rng.choice(("C", "F"))
    elif name == "convert_currency":
        target = pick("currency", list(world.rates))
        source = rng.choice([c for c in world.rates if c != target])
        args = {"amount": rng.choice(AMOUNTS), "from_currency": source,
                "to_currency": target}
    elif name == "convert_units":
        kind = rng.choice(("length", "mass", "volume"))
        source, target = rng.sample(UNITS_OF[kind], 2)
        args = {"value": rng.choice(VALUES), "from_unit": source, "to_unit": target}
    elif name == "add_event":
        args = {"title": rng.choice(TITLES), "date": pick("date", world.week), "time": rng.choice(HOURS)}
        if rng.random() < 0.5:
            args["duration_minutes"] = rng.choice(DURATIONS)
    elif name == "list_events":
        args = {"date": pick("date", world.week)}
    elif name in ("check_stock", "place_order"):
        args = {"item": pick("item", list(world.stock))}
        if name == "place_order":
            args["quantity"] = rng.randrange(1, 4)
    else:  # get_order / cancel_order: an existing order if there is one
        args = {"order_id": rng.choice(list(world.orders)) if world.orders else "ORD-1001"}
    flaw = None
    if rng.random() < level.bad_rate:
        flaw = rng.choice(("missing", "type", "unknown", "name", "extra"))
        key = rng.choice(TOOLS[name]["parameters"]["required"])
        if flaw == "missing":
            del args[key]
        elif flaw == "type":
            args[key] = str(args[key]) if not isinstance(args[key], str) else len(args[key])
        elif flaw == "unknown":
            args[key] = UNKNOWN.get(key, "???")
        elif flaw == "name":
            name = name.replace("_", "", 1)  # get_weather -> getweather
        else:
            args["verbose"] = True
    return name, args, {"tool": name, "api": API_OF.get(name, "unknown"), "flaw": flaw}


TASKS = ("help {person} plan a trip to {city} on {date}", "restock the office: {item} is running low",
         "prepare the budget for {city} in {currency}", "organise the team's calendar for {date}")
PEOPLE = ("Ada", "Sam", "Noor", "Lena", "Kofi", "Mei")


class ToolSim(Simulator):
    name: ClassVar[str] = "toolsim"
    version: ClassVar[str] = "1"
    primary_metric: ClassVar[str] = "fwm/bleu"
    action_meta_keys: ClassVar[tuple[str, ...]] = ("tool", "api", "flaw", "ok", "error")

    def episode(self, rng: random.Random, episode_id: str,
                override: tuple[int, Sequence[str]] | None = None) -> list[Transition]:
        level = LEVELS[self.difficulty]
        world = new_world(rng, level)
        focus = {"city": rng.choice(list(world.weather)), "currency": rng.choice(list(world.rates)[1:]),
                 "item": rng.choice(list(world.stock)),
                 "date": rng.choice(world.week[1:])}
        task = rng.choice(TASKS).format(person=rng.choice(PEOPLE), **focus)
        static, known, responses = header(world, task), facts(world), "\nresponses:"
        out = []
        for t in range(self.episode_length):
            name, args, meta = sample_call(rng, world, level, focus)
            call = canonical_call(name, args)  # the hidden action
            if override is not None and t == override[0]:
                branches = []
                for other in override[1]:  # each on its own copy of the world
                    copied = copy_world(world)
                    branches.append(self.advance(copied, static, known, responses, t, other, respond(copied, other),
                                                 dict(meta, tool=called_name(other)), episode_id)[0])
                return out + branches
            # `answer` is `respond` without the parse
            transition, known, responses = self.advance(world, static, known, responses, t, call,
                                                        answer(world, name, args), meta, episode_id)
            out.append(transition)
        return out

    def advance(self, world: World, static: str, known: str, responses: str, t: int, call: str, response: dict,
                meta: dict, episode_id: str) -> tuple[Transition, str, str]:
        """The transition of `call`, whose `response` `world` has given: with the facts and the log after it."""
        state = static + known + responses
        error = response.get("error")
        if error is None and meta["tool"] in MUTATING:  # a call that changed the world changes the facts shown
            known = facts(world)
        responses += f"\n{t + 1}. {dump(response)}"
        meta.update(difficulty=self.difficulty, ok=error is None, error=error["code"] if error else None)
        return Transition(state, static + known + responses, call, episode_id, t, meta), known, responses

    def candidate_actions(self, transition: Transition) -> list[str]:
        """The generator's support in this state (`sample_call`), flawed calls included: every function
        listed, with the arguments it draws from what the state shows (cities, currencies, items, orders,
        the week from today) and from its fixed value lists (amounts, units, titles, hours, durations).
        Arguments are unbounded in the grammar, so only these values are enumerated."""
        fields = self.parse_state(transition.state)
        listed = {kind: [key.split(" ", 1)[1] for key in fields if key.startswith(kind + " ")]
                  for kind in ("weather", "rate", "stock", "order")}
        today = date.fromisoformat(fields["today"])
        week = [(today + timedelta(days=d)).isoformat() for d in range(7)]
        currencies = ["USD", *listed["rate"]]
        calls: dict[str, None] = {}
        for name in fields["tools"].split(", "):
            if name in ("get_order", "cancel_order") and not listed["order"]:
                continue  # the generator places an order instead
            for args in base_arguments(name, listed["weather"], currencies, listed["stock"], week, listed["order"]):
                calls.update(dict.fromkeys(flawed_calls(name, args)))
        return list(calls)

    def parse_state(self, text: str) -> dict[str, str] | None:
        """Fields `task`, `today`, `tools`, `weather CITY`, `rate CURRENCY`, `stock ITEM`, `order ID`,
        `calendar EVENT` (its count), and per response its JSON leaves (`response 2 error.code`, canonical JSON)."""
        lines = text.strip().split("\n")
        heads = [line.partition(": ") for line in lines[:8]]
        if len(lines) < 9 or [h[0] for h in heads] != list(PARTS) or lines[8] != "responses:":
            return None
        fields = {head: value for head, (_, _, value) in zip(PARTS[:3], heads, strict=False)}
        for (prefix, sep, key_words), (_, _, value) in zip(LISTS.values(), heads[3:], strict=True):
            if value in ("(empty)", "(none)"):
                continue
            for entry in value.split(sep):
                if key_words is None:  # the calendar can hold the same event twice: an entry keys its count
                    fields[f"{prefix} {entry}"] = str(int(fields.get(f"{prefix} {entry}", "0")) + 1)
                    continue
                words = entry.split(" ", key_words)
                key = f"{prefix} {' '.join(words[:key_words])}"
                if len(words) <= key_words or key in fields:
                    return None
                fields[key] = words[key_words]
        for k, line in enumerate(lines[9:], 1):
            number, _, body = line.partition(". ")
            try:
                response = json.loads(body)
            except ValueError:
                return None
            if number != str(k) or not isinstance(response, dict):
                return None
            fields.update({f"response {k} {path}": value for path, value in leaves(response)})
        return fields


# The lines of a state before its responses; the lists are split into entries keyed by their first words.
LISTS = {"weather": ("weather", "; ", 1), "rates per 1 USD": ("rate", ", ", 1), "stock": ("stock", "; ", 1),
         "calendar": ("calendar", "; ", None), "orders": ("order", "; ", 1)}  # line -> field prefix, separator, key words
PARTS = ["task", "today", "tools", *LISTS]


def leaves(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, canonical JSON) of a JSON value's leaves; an empty object or list is a leaf itself."""
    if isinstance(value, dict) and value:
        return [leaf for key, item in value.items() for leaf in leaves(item, f"{path}.{key}" if path else key)]
    if isinstance(value, list) and value:
        return [leaf for i, item in enumerate(value) for leaf in leaves(item, f"{path}[{i}]")]
    return [(path, json.dumps(value, sort_keys=True, ensure_ascii=False))]


def copy_world(world: World) -> World:
    """A copy whose changing parts (stock counts, calendar, orders) are its own; the rest is never changed."""
    return dataclasses.replace(world, stock={item: list(entry) for item, entry in world.stock.items()},
                               events=list(world.events), orders={k: dict(o) for k, o in world.orders.items()})


def base_arguments(name: str, cities: list[str], currencies: list[str], items: list[str], week: list[str],
                   orders: list[str]) -> list[dict[str, Any]]:
    """Every argument set `sample_call` can draw for `name` before a flaw (the focus is one of the options)."""
    if name == "get_weather":
        return [{"city": c, **unit} for c in cities for unit in ({}, {"unit": "C"}, {"unit": "F"})]
    if name == "convert_currency":
        return [{"amount": a, "from_currency": s, "to_currency": t} for t in currencies for s in currencies if s != t
                for a in AMOUNTS]
    if name == "convert_units":
        return [{"value": v, "from_unit": s, "to_unit": t} for kind in UNITS_OF.values()
                for s, t in itertools.permutations(kind, 2) for v in VALUES]
    if name == "add_event":
        return [{"title": title, "date": d, "time": h, **minutes} for title in TITLES for d in week for h in HOURS
                for minutes in ({}, *({"duration_minutes": m} for m in DURATIONS))]
    if name == "list_events":
        return [{"date": d} for d in week]
    if name == "check_stock":
        return [{"item": item} for item in items]
    if name == "place_order":
        return [{"item": item, "quantity": q} for item in items for q in range(1, 4)]
    return [{"order_id": order} for order in orders]


def flawed_calls(name: str, args: dict[str, Any]) -> list[str]:
    """The call and every flawed version of it that `sample_call` can make."""
    calls = [canonical_call(name, args), canonical_call(name.replace("_", "", 1), args),
             canonical_call(name, {**args, "verbose": True})]
    for key in TOOLS[name]["parameters"]["required"]:
        value = args[key]
        calls += [canonical_call(name, {k: v for k, v in args.items() if k != key}),
                  canonical_call(name, {**args, key: str(value) if not isinstance(value, str) else len(value)}),
                  canonical_call(name, {**args, key: UNKNOWN.get(key, "???")})]
    return calls
