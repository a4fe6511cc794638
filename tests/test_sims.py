"""The three textual simulators: determinism, splits, chaining, the rules of each world, knobs, errors."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from decimal import Decimal

import pytest

import swirl_envs
from swirl_envs import SwirlError
from swirl_envs.sims import physics, tools, web
from swirl_envs.sims.base import split_rng

SIMS = ["textphysics", "textweb", "toolsim"]


def bench(name, **kwargs):
    return swirl_envs.make_benchmark(name, **kwargs)


# ---------------------------------------------------------------- shared contract


@pytest.mark.parametrize("name", SIMS)
def test_same_index_same_episode_and_splits_disjoint(name):
    sim = bench(name, labelled=True, difficulty="hard")
    again = sim.episode(split_rng(name, "test", 3), "test-3")
    assert again == sim.episode(split_rng(name, "test", 3), "test-3")
    assert again == list(sim.episodes("test", limit=4))[3]
    assert list(bench(name).transitions("validation", limit=30)) == list(bench(name).transitions("validation", limit=30))

    def keys(split, n):
        return {tuple((t.state, t.action) for t in e) for e in sim.episodes(split, limit=n)}

    train, validation, test = keys("train", 200), keys("validation", 100), keys("test", 200)
    assert len(validation) == 100 and len(test) == 200
    assert not (train & validation) and not (train & test) and not (validation & test)


@pytest.mark.parametrize("name", SIMS)
@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_episodes_chain_and_have_the_asked_length(name, difficulty):
    for episode in bench(name, difficulty=difficulty, episode_length=7).episodes("train", limit=30):
        assert [t.step for t in episode] == list(range(7))
        assert len({t.episode_id for t in episode}) == 1
        for before, after in zip(episode, episode[1:], strict=False):
            assert after.state == before.next_state
        assert all(t.meta["difficulty"] == difficulty for t in episode)


@pytest.mark.parametrize("name", SIMS)
def test_actions_hidden_unless_labelled(name):
    assert all(t.action is None for t in bench(name).transitions("test", limit=20))
    labelled = list(bench(name, labelled=True).transitions("test", limit=20))
    assert all(isinstance(t.action, str) and t.action for t in labelled)


@pytest.mark.parametrize("name", SIMS)
def test_dataset_view(name):
    ds = bench(name, labelled=True).to_dataset("train", limit=12)
    assert ds.num_rows == 12 and set(ds.column_names) == {"state", "next_state", "action", "episode_id", "step", "meta"}
    assert ds[1]["state"] == ds[0]["next_state"] and ds[0]["action"]
    assert json.loads(ds[0]["meta"])["difficulty"] == "medium"
    assert bench(name).to_dataset("validation", limit=3)["action"] == [None] * 3


@pytest.mark.parametrize("name", SIMS)
def test_bad_options_are_clear_errors(name):
    with pytest.raises(SwirlError, match=f"{name}: difficulty must be one of .*'extreme'"):
        bench(name, difficulty="extreme")
    with pytest.raises(SwirlError, match=f"{name}: episode_length must be >= 1, got 0"):
        bench(name, episode_length=0)
    with pytest.raises(SwirlError, match="unbounded stream"):
        bench(name).transitions("train")


@pytest.mark.parametrize("name", ["textphysics", "textweb"])
def test_random_policy_is_mostly_valid(name):
    meta = [t.meta for t in bench(name, difficulty="hard", labelled=True).transitions("train", limit=1000)]
    valid = sum(m["valid"] for m in meta) / len(meta)
    assert 0.85 < valid < 1.0  # a few misclicks / missing blocks, as a real user would make


# ---------------------------------------------------------------- physics


def world(*blocks, length=200, friction=0, collision="elastic"):
    return physics.World(length, friction, collision, [physics.Block(*b) for b in blocks])


def momentum(w):
    return sum(b.m * b.v for b in w.blocks)


def test_physics_text_is_exact_and_readable():
    w = world(("A", 15, -5, 2), ("B", 120, 0, 1), friction=5)
    assert physics.render(w) == ("tick 0; track 0.0 to 20.0 with walls at both ends; friction 0.5; collisions "
                                 "elastic\nblock A: x=1.5 v=-0.5 m=2\nblock B: x=12.0 v=0.0 m=1")


def test_physics_elastic_collision_conserves_momentum_exactly():
    w = world(("A", 50, 20, 1), ("B", 60, 0, 3))
    physics.tick(w)
    a, b = w.blocks
    assert (a.v, b.v) == (-10, 10) and momentum(w) == 20  # ((1-3)*2 / 4, 2*1*2 / 4): no rounding needed
    assert a.x == b.x == 63 and w.events == {"collisions": 1, "wall_hits": 0}  # centre of mass 6.25 -> 6.3
    physics.tick(w)
    assert w.blocks[0].x < w.blocks[1].x  # and they separate


def test_physics_collisions_conserve_momentum_up_to_rounding():
    rng, checked = random.Random(0), 0
    for _ in range(500):
        names = rng.sample("ABCDE", 4)
        xs = sorted(rng.sample(range(20, 380), 4))
        w = world(*[(n, x, rng.randrange(-30, 31), rng.randrange(1, 7)) for n, x in zip(names, xs, strict=True)],
                  length=400, collision=rng.choice(["elastic", "inelastic"]))
        before = momentum(w)
        physics.tick(w)
        if w.events["wall_hits"] == 0 and w.events["collisions"]:
            checked += 1
            assert abs(momentum(w) - before) <= w.events["collisions"] * 6  # half a tenth x (m1 + m2) each
        assert [b.x for b in w.blocks] == sorted(b.x for b in w.blocks)  # blocks never pass each other
    assert checked > 50


def test_physics_inelastic_blocks_move_together():
    w = world(("A", 50, 30, 2), ("B", 70, 0, 1), collision="inelastic")
    physics.tick(w)
    assert w.blocks[0].v == w.blocks[1].v == 20 and w.blocks[0].x == w.blocks[1].x


def test_physics_friction_slows_and_walls_stop():
    w = world(("A", 100, 30, 1), friction=5)
    physics.tick(w)
    assert (w.blocks[0].x, w.blocks[0].v) == (125, 25)
    w = world(("B", 20, -30, 2), ("A", 190, 25, 1))
    physics.tick(w)
    assert [(b.x, b.v) for b in w.blocks] == [(0, 0), (200, 0)] and w.events["wall_hits"] == 2
    w = world(("A", 100, 4, 1), friction=5)
    physics.tick(w)
    assert (w.blocks[0].x, w.blocks[0].v) == (100, 0)  # friction stops a slow block, never reverses it


def test_physics_actions():
    w = world(("A", 50, 0, 3), ("B", 100, 0, 1))
    assert physics.act(w, "push block A right with strength 2") and w.blocks[0].v == 7  # 2 / 3 -> 0.7
    assert physics.act(w, "pull block B toward block A with strength 1") and w.blocks[1].v == -10
    assert physics.act(w, "drop block C (mass 2) at x=7.5") and [b.name for b in w.blocks] == ["A", "C", "B"]
    assert not physics.act(w, "push block Z left with strength 3")
    assert physics.act(w, "wait")
    assert [b.v for b in w.blocks] == [7, 0, -10]


def test_physics_episodes_stay_on_the_track():
    for t in bench("textphysics", difficulty="hard", episode_length=10).transitions("train", limit=2000):
        xs = [float(x) for x in re.findall(r"x=(-?[\d.]+)", t.next_state)]
        length = float(re.search(r"to ([\d.]+)", t.next_state).group(1))
        assert xs == sorted(xs) and all(0 <= x <= length for x in xs)


def test_physics_difficulty_changes_the_world():
    easy = next(bench("textphysics", difficulty="easy").transitions("test", limit=1)).state
    hard = next(bench("textphysics", difficulty="hard").transitions("test", limit=1)).state
    assert easy.count("block ") == 2 and hard.count("block ") == 5
    assert "to 10.0" in easy and "to 40.0" in hard


# ---------------------------------------------------------------- web


class Browser:
    """Drive the web rules by hand: what an episode does, minus the random policy."""

    def __init__(self, difficulty="easy", seed=0):
        self.site = web.generate(random.Random(seed), web.LEVELS[difficulty])
        self.page, self.history = web.Page("home"), []
        self.state = self._render()

    def _render(self):
        url, title, self.els = web.elements(self.site, self.page)
        return web.render(url, title, self.els, self.page.fields)

    def find(self, role, label):
        return next(i for i, e in enumerate(self.els, 1) if e[0] == role and e[1].startswith(label))

    def do(self, action):
        self.page, applied = web.step(self.site, self.page, self.history, self.els, action)
        self.state = self._render()
        return applied


def test_web_page_is_an_accessibility_tree():
    b = Browser()
    lines = b.state.splitlines()
    assert lines[0].startswith("url: https://") and lines[1].startswith("title: Home | ")
    assert lines[2:7] == ['[1] link "Home"', '[2] textbox "Search" value=""', '[3] button "Search"',
                          '[4] link "Cart (0)"', '[5] link "Inbox"']


def test_web_back_returns_to_the_previous_page():
    b = Browser()
    b.do('type [2] "lamp"')
    home = b.state
    assert b.do(f"click [{b.find('link', b.site.categories[0])}]") and "/category/" in b.state
    category = b.state
    b.do(f"click [{b.find('link', b.site.products[0].name)}]")
    assert b.do("back") and b.state == category
    assert b.do("back") and b.state == home  # as it was left, typed value included
    assert not b.do("back") and b.state == home  # no history: a no-op


def test_web_search_form_shows_the_typed_query():
    b = Browser("medium")
    word = b.site.products[0].name.split()[1]
    b.do(f'type [2] "{word}"')
    assert f'value="{word}"' in b.state
    assert b.do("submit [2]")
    assert f"search?q={word}" in b.state and f"heading \"Results for '{word}'\"" in b.state
    hits = [p.name for p in b.site.products if word in p.name]
    assert hits and all(name in b.state for name in hits)
    b.do('type [2] "unicorn"')
    b.do("click [3]")
    assert 'text "No products found"' in b.state


def test_web_checkout_form_echoes_what_was_typed():
    b = Browser()
    product = b.site.products[0]
    b.do(f"click [{b.find('link', product.category)}]")
    b.do(f"click [{b.find('link', product.name)}]")
    b.do(f'select [{b.find("combobox", "Quantity")}] "2"')
    b.do(f"click [{b.find('button', 'Add to cart')}]")
    assert f'status "Added 2 x {product.name} to cart"' in b.state and 'link "Cart (2)"' in b.state
    b.do("click [4]")
    assert f"Total: ${2 * product.price}" in b.state
    b.do(f"click [{b.find('button', 'Checkout')}]")
    b.do(f"click [{b.find('button', 'Place order')}]")
    assert 'status "Name is required"' in b.state
    b.do(f'type [{b.find("textbox", "Name")}] "Ada Lovelace"')
    b.do(f'type [{b.find("textbox", "Address")}] "12 Elm St"')
    b.do(f'select [{b.find("combobox", "Shipping")}] "express"')
    assert b.do(f"submit [{b.find('textbox', 'Address')}]")
    assert 'heading "Order #1001 confirmed"' in b.state
    assert 'text "Shipping to Ada Lovelace, 12 Elm St (express)"' in b.state
    assert f'text "Total paid: ${2 * product.price}"' in b.state and 'link "Cart (0)"' in b.state


def test_web_reply_and_invalid_actions():
    b = Browser()
    b.do("click [5]")
    b.do(f"click [{b.find('link', b.site.messages[0][0])}]")
    b.do(f'type [{b.find("textbox", "Reply")}] "Thanks!"')
    b.do(f"click [{b.find('button', 'Send')}]")
    assert 'status "Reply sent: Thanks!"' in b.state and '"Reply" value=""' in b.state
    before = b.state
    assert not b.do("click [99]") and not b.do("click [6]") and not b.do('type [1] "x"')
    assert not b.do('select [2] "3"') and b.state == before


def test_web_difficulty_changes_the_site():
    easy, hard = (web.generate(random.Random(1), web.LEVELS[d]) for d in ("easy", "hard"))
    assert (len(easy.products), len(easy.messages)) == (6, 2) and (len(hard.products), len(hard.messages)) == (30, 8)
    states = [t.next_state for t in bench("textweb", difficulty="hard").transitions("test", limit=20)]
    assert all("Sponsored: " in s for s in states)  # the unpredictable banner is the hard level's noise
    assert not any("Sponsored" in t.state for t in bench("textweb", difficulty="easy").transitions("test", limit=20))


# ---------------------------------------------------------------- tools


def tool_world(difficulty="hard", seed=0):
    return tools.new_world(random.Random(seed), tools.LEVELS[difficulty])


def call(w, name, **arguments):
    return tools.respond(w, tools.canonical_call(name, arguments))


def test_tool_schemas_cover_five_apis():
    assert len(set(tools.API_OF.values())) >= 5 and set(tools.API_OF) == set(tools.TOOLS)
    for schema in tools.TOOLS.values():
        params = schema["parameters"]
        assert params["type"] == "object" and set(params["required"]) <= set(params["properties"])
    assert tools.canonical_call("get_weather", {"unit": "C", "city": "Oslo"}) == \
        '{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "C"}}'


def test_tool_currency_and_unit_arithmetic():
    w = tool_world()
    w.rates = {"USD": Decimal(1), "EUR": Decimal("0.92"), "NOK": Decimal("10.53")}
    # rate = 10.53 / 0.92 = 11.44565... -> 11.4457; 250 x 11.4457 = 2861.425 -> 2861.43
    assert call(w, "convert_currency", amount=250, from_currency="EUR", to_currency="NOK") == {
        "amount": 250, "from": "EUR", "to": "NOK", "rate": 11.4457, "result": 2861.43}
    assert call(w, "convert_currency", amount=12.5, from_currency="USD", to_currency="EUR")["result"] == 11.5
    assert call(w, "convert_units", value=5, from_unit="km", to_unit="mi")["result"] == 3.107
    assert call(w, "convert_units", value=1, from_unit="lb", to_unit="g")["result"] == 453.592


def test_tool_bad_calls_give_error_responses():
    w = tool_world()
    city = next(iter(w.weather))

    def error(response):
        return response["error"]["code"], response["error"]["message"]

    assert error(call(w, "get_weather")) == ("missing_argument", "missing required argument 'city'")
    assert error(call(w, "get_weather", city="Atlantis")) == ("not_found", "unknown city 'Atlantis'")
    assert error(call(w, "get_weather", city=city, unit="K"))[0] == "invalid_value"
    assert error(call(w, "convert_currency", amount="100", from_currency="USD", to_currency="USD")) == (
        "invalid_type", "argument 'amount' must be of type number, got string")
    assert error(call(w, "place_order", item=next(iter(w.stock)), quantity=True))[0] == "invalid_type"
    assert error(call(w, "get_weather", city=city, verbose=True))[0] == "unexpected_argument"
    assert error(call(w, "getweather", city=city)) == ("unknown_function", "no function named 'getweather'")
    assert error(call(w, "convert_units", value=1, from_unit="kg", to_unit="km"))[0] == "invalid_value"
    assert error(call(w, "list_events", date="14/03/2025"))[0] == "invalid_value"
    assert error(tools.respond(w, '{"name": "get_weather", '))[0] == "invalid_json"
    assert error(tools.respond(w, "[1, 2]"))[0] == "invalid_request"
    easy = tool_world("easy")
    assert error(call(easy, "cancel_order", order_id="ORD-1001"))[0] == "unknown_function"  # not on easy


def test_tool_calls_change_the_world():
    w = tool_world()
    item, (count, price) = next((k, v) for k, v in w.stock.items() if v[0] >= 2)
    order = call(w, "place_order", item=item, quantity=2)
    assert order == {"order_id": "ORD-1001", "item": item, "quantity": 2, "total": float(price * 2),
                     "status": "placed"}
    assert w.stock[item][0] == count - 2 and f"{item} {count - 2} at ${price}" in tools.facts(w)
    assert call(w, "place_order", item=item, quantity=count)["error"]["code"] == "out_of_stock"
    assert call(w, "get_order", order_id="ORD-1001")["status"] == "placed"
    assert call(w, "cancel_order", order_id="ORD-1001")["status"] == "cancelled" and w.stock[item][0] == count
    assert call(w, "cancel_order", order_id="ORD-1001")["error"]["code"] == "invalid_state"
    day = w.today.isoformat()
    added = call(w, "add_event", title="Launch", date=day, time="21:30")
    assert added["status"] == "created" and added["duration_minutes"] == 60
    assert {"time": "21:30", "title": "Launch", "duration_minutes": 60} in call(w, "list_events", date=day)["events"]
    assert call(w, "add_event", title="Again", date=day, time="21:30")["error"]["code"] == "conflict"
    assert call(w, "add_event", title="Late", date=day, time="24:00")["error"]["code"] == "invalid_value"


def test_tool_weather_units():
    w = tool_world()
    w.weather["Oslo"] = ("snow", -3, 80)
    w.functions = tools.LEVELS["hard"].functions
    assert call(w, "get_weather", city="Oslo", unit="F") == {
        "city": "Oslo", "condition": "snow", "temperature": 27, "unit": "F", "humidity": 80}  # 26.6 -> 27


def test_tool_episodes_log_the_world_responses_and_hide_the_call():
    sim = bench("toolsim", labelled=True, difficulty="hard", episode_length=8)
    for index, episode in enumerate(sim.episodes("test", limit=20)):
        # Replaying the hidden calls on a world built from the same seed reproduces every logged response.
        w = tools.new_world(split_rng("toolsim", "test", index), tools.LEVELS["hard"])
        for t in episode:
            assert t.action not in t.next_state
            assert t.next_state.startswith(t.state.split("\nstock: ")[0])  # task, tools, weather, rates stay
            logged = t.next_state.rsplit(f"\n{t.step + 1}. ", 1)[1]
            assert logged == tools.dump(tools.respond(w, t.action))
    errors = {t.meta["error"] for t in bench("toolsim", labelled=True, difficulty="hard").transitions("train", limit=600)}
    assert {"missing_argument", "invalid_type", "not_found", "unknown_function"} <= errors


def test_tool_difficulty_changes_the_apis():
    def listed(difficulty):
        state = next(bench("toolsim", difficulty=difficulty).transitions("test", limit=1)).state
        return re.search(r"tools: (.*)", state).group(1).split(", ")

    assert len(listed("easy")) == 5 and len(listed("hard")) == 9
    assert len({tools.API_OF[f] for f in listed("easy")}) == 5


@pytest.mark.parametrize("name", ["textphysics", "textweb", "toolsim"])
def test_execute_replays_the_world_with_another_action(name):
    from swirl_envs.registry import make_benchmark

    bench = make_benchmark(name, labelled=True)
    data = list(bench.transitions("test", limit=40))
    assert all(bench.execute(t, t.action) == t.next_state for t in data)  # the recorded action: y itself
    # another transition's action (usually) leads elsewhere; an action outside the grammar is a no-op
    moved = sum(bench.execute(t, o.action) != t.next_state for t, o in zip(data, data[1:], strict=False) if o.action != t.action)
    assert moved > 0
    assert all(isinstance(bench.execute(t, "not an action"), str) for t in data[:5])
    with pytest.raises(SwirlError, match="episode id"):
        bench.execute(dataclasses.replace(data[0], episode_id="elsewhere"), data[0].action)


def test_report_card_scores_action_validity_and_states_on_simulators(tmp_path):
    from evals import cli

    assert cli.main(["run", "--bench", "textphysics", "--model", "tiny", "--methods", "base", "--limit", "4", "--max-new-tokens", "6",
                     "--output", str(tmp_path / "run"), "--quiet", "--threads", "1"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    scores = report["methods"]["base"]["metrics"]
    assert scores["idm/action_valid"]["n"] == 4
    # the simulator reads its states back, so the card scores them field by field
    assert scores["fwm/state_exact"]["n"] == scores["fwm/changed_f1"]["n"] == 4
