"""TextPhysics: point blocks on a walled line, with friction and collisions, described as text.

All quantities are integers in tenths (x=3.5 is stored as 35), so every printed number is the exact
state and a world model can learn the arithmetic. One action, then one tick of dt = 1:

  push block A right with strength s   velocity += s / mass   (an impulse, rounded to 0.1)
  pull block A toward block B ...      the same impulse, directed at B
  drop block D (mass m) at x=p         a new block at rest; blocks keep their order on the line
  wait                                 nothing; the world just ticks

  tick: friction  |v| -> max(0, |v| - f)
        move      x += v
        walls     a block past a wall stops at the wall (x clamped, v = 0)
        collide   neighbours that would pass each other meet at their centre of mass (which is
                  where the pair's momentum puts it either way) and exchange momentum:
                  elastic   v1' = ((m1-m2) v1 + 2 m2 v2) / (m1+m2), and symmetrically v2'
                  inelastic v1' = v2' = (m1 v1 + m2 v2) / (m1+m2)
Divisions round to the nearest tenth, halves away from zero; blocks never pass one another.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import ClassVar

from ..transition import Transition
from .base import Simulator

NAMES = "ABCDEFGHIJKL"


@dataclass(frozen=True)
class Level:
    length: int  # track length in whole units (walls at 0 and length)
    blocks: int  # blocks at the start
    max_blocks: int  # drops stop here
    masses: tuple[int, ...]
    strengths: tuple[int, ...]
    frictions: tuple[int, ...]  # tenths per tick
    collisions: tuple[str, ...]
    invalid_rate: float  # share of actions naming a block that is not there (a no-op)


LEVELS = {
    "easy": Level(10, 2, 3, (1, 2), (1, 2, 3), (5,), ("elastic",), 0.0),
    "medium": Level(20, 3, 5, (1, 2, 3, 4), (1, 2, 3, 4, 5), (0, 5, 10), ("elastic", "inelastic"), 0.03),
    "hard": Level(40, 5, 8, (1, 2, 3, 4, 5, 6), tuple(range(1, 9)), (0, 3, 5, 10), ("elastic", "inelastic"), 0.05),
}


@dataclass
class Block:
    name: str
    x: int  # tenths
    v: int  # tenths per tick
    m: int  # whole units


@dataclass
class World:
    length: int  # tenths
    friction: int  # tenths per tick
    collision: str  # "elastic" | "inelastic"
    blocks: list[Block]  # always sorted by position
    tick: int = 0
    events: dict[str, int] = field(default_factory=dict)  # what the last tick did (collisions, wall hits)


def rdiv(a: int, b: int) -> int:
    """a / b rounded to the nearest integer, halves away from zero (b > 0)."""
    q = (2 * abs(a) + b) // (2 * b)
    return q if a >= 0 else -q


def tenths(value: int) -> str:
    return f"{value / 10:.1f}"


def find(world: World, name: str) -> Block | None:
    return next((b for b in world.blocks if b.name == name), None)


def act(world: World, action: str) -> bool:
    """Apply one action's impulse or drop, in place; False when it names no block here (a no-op)."""
    words = action.split()
    if words[0] in ("push", "pull"):
        block = find(world, words[2])
        if block is None:
            return False
        if words[0] == "push":
            direction = 1 if words[3] == "right" else -1
        else:
            target = find(world, words[5])
            if target is None or target is block or target.x == block.x:
                return False
            direction = 1 if target.x > block.x else -1
        block.v += direction * rdiv(int(words[-1]) * 10, block.m)
    elif words[0] == "drop":  # "drop block D (mass 3) at x=12.5"
        x = round(float(words[-1][2:]) * 10)
        if find(world, words[2]) is not None or not 0 <= x <= world.length:
            return False
        block = Block(words[2], x, 0, int(words[4].rstrip(")")))
        index = next((i for i, b in enumerate(world.blocks) if b.x > x), len(world.blocks))
        world.blocks.insert(index, block)
    return True


def tick(world: World) -> None:
    """Advance the world by one tick: friction, motion, walls, collisions (see the module docstring)."""
    f, blocks = world.friction, world.blocks
    walls = hits = 0
    for b in blocks:
        if b.v > 0:
            b.v = max(0, b.v - f)
        elif b.v < 0:
            b.v = min(0, b.v + f)
        b.x += b.v
        if b.x < 0 or b.x > world.length:
            b.x, b.v, walls = min(max(b.x, 0), world.length), 0, walls + 1
    # A collision can push a block into its other neighbour, so sweep until the order holds.
    for _ in range(len(blocks)):
        crossed = False
        for a, b in pairwise(blocks):
            if a.x <= b.x:
                continue
            crossed, total = True, a.m + b.m
            if a.v > b.v:
                hits += 1
                if world.collision == "elastic":
                    a.v, b.v = (rdiv((a.m - b.m) * a.v + 2 * b.m * b.v, total),
                                rdiv((b.m - a.m) * b.v + 2 * a.m * a.v, total))
                else:
                    a.v = b.v = rdiv(a.m * a.v + b.m * b.v, total)
            a.x = b.x = rdiv(a.m * a.x + b.m * b.x, total)
        if not crossed:
            break
    for a, b in pairwise(blocks):  # rounding alone may leave a pair a tenth out of order
        b.x = max(a.x, b.x)
    world.tick += 1
    world.events = {"collisions": hits, "wall_hits": walls}


def render(world: World) -> str:
    lines = [f"tick {world.tick}; track 0.0 to {tenths(world.length)} with walls at both ends; "
             f"friction {tenths(world.friction)}; collisions {world.collision}"]
    lines += [f"block {b.name}: x={tenths(b.x)} v={tenths(b.v)} m={b.m}" for b in world.blocks]
    return "\n".join(lines)


# What `render` writes, for reading a state back.
NUMBER = r"(-?\d+\.\d)"
HEADER = re.compile(rf"tick (\d+); track 0\.0 to {NUMBER} with walls at both ends; friction {NUMBER}; "
                    r"collisions (elastic|inelastic)")
BLOCK = re.compile(rf"block ([A-Z]): x={NUMBER} v={NUMBER} m=(\d+)")


def new_world(rng: random.Random, level: Level) -> World:
    length = level.length * 10
    # Distinct whole-unit starting positions keep the initial order unambiguous.
    xs = sorted(rng.sample(range(1, level.length), level.blocks))
    blocks = [Block(NAMES[i], x * 10, 0, rng.choice(level.masses)) for i, x in enumerate(xs)]
    return World(length, rng.choice(level.frictions), rng.choice(level.collisions), blocks)


def sample_action(rng: random.Random, world: World, level: Level) -> tuple[str, dict]:
    """A random but sensible action: mostly pushes, sometimes pulls, drops and waits."""
    names = [b.name for b in world.blocks]
    strength = rng.choice(level.strengths)
    if rng.random() < level.invalid_rate:
        ghost = NAMES[len(NAMES) - 1 - rng.randrange(3)]  # a name the world never uses
        return f"push block {ghost} right with strength {strength}", {"type": "push", "block": ghost}
    r = rng.random()
    if r < 0.55:
        name, direction = rng.choice(names), rng.choice(("left", "right"))
        return (f"push block {name} {direction} with strength {strength}",
                {"type": "push", "block": name, "direction": direction, "strength": strength})
    if r < 0.75 and len(names) > 1:
        name, target = rng.sample(names, 2)
        return (f"pull block {name} toward block {target} with strength {strength}",
                {"type": "pull", "block": name, "target": target, "strength": strength})
    if r < 0.85 and len(names) < level.max_blocks:
        name, mass = NAMES[len(names)], rng.choice(level.masses)
        x = rng.randrange(0, world.length + 1, 5)
        return (f"drop block {name} (mass {mass}) at x={tenths(x)}",
                {"type": "drop", "block": name, "mass": mass})
    return "wait", {"type": "wait"}


class TextPhysics(Simulator):
    name: ClassVar[str] = "textphysics"
    version: ClassVar[str] = "1"
    primary_metric: ClassVar[str] = "fwm/bleu"
    action_meta_keys: ClassVar[tuple[str, ...]] = ("type", "block", "direction", "strength", "target", "mass", "valid")

    def episode(self, rng: random.Random, episode_id: str,
                override: tuple[int, Sequence[str]] | None = None) -> list[Transition]:
        level = LEVELS[self.difficulty]
        world = new_world(rng, level)
        state, out = render(world), []
        for step in range(self.episode_length):
            action, meta = sample_action(rng, world, level)
            if override is not None and step == override[0]:
                return out + [self.advance(copy.deepcopy(world), state, other, dict(meta), episode_id, step)
                              for other in override[1]]
            out.append(self.advance(world, state, action, meta, episode_id, step))
            state = out[-1].next_state
        return out

    def advance(self, world: World, state: str, action: str, meta: dict, episode_id: str, step: int) -> Transition:
        """Take `action` in `world` (in place) and tick: the transition from `state`."""
        try:
            valid = act(world, action)
        except (IndexError, ValueError):  # not an action of this simulator's grammar: nothing happens
            valid = False
        tick(world)
        meta.update(world.events, valid=valid, difficulty=self.difficulty, tick=world.tick)
        return Transition(state, render(world), action, episode_id, step, meta)

    def candidate_actions(self, transition: Transition) -> list[str]:
        """The generator's support in this state (`sample_action`): strengths, masses and drop positions are
        unbounded in the grammar, so they range over the level's values, and drops on its 0.5 grid."""
        fields, level = self.parse_state(transition.state), LEVELS[self.difficulty]
        names = [key[0] for key in fields if key.endswith(".m")]
        out = [f"push block {name} {direction} with strength {s}" for name in names
               for direction in ("left", "right") for s in level.strengths]
        if level.invalid_rate:
            out += [f"push block {ghost} right with strength {s}" for ghost in NAMES[-3:] for s in level.strengths]
        out += [f"pull block {a} toward block {b} with strength {s}" for a in names for b in names if a != b
                for s in level.strengths]
        if len(names) < level.max_blocks:
            length = round(float(fields["track"]) * 10)
            out += [f"drop block {NAMES[len(names)]} (mass {m}) at x={tenths(x)}" for m in level.masses
                    for x in range(0, length + 1, 5)]
        return [*out, "wait"]

    def parse_state(self, text: str) -> dict[str, str] | None:
        """Fields `tick`, `track`, `friction`, `collisions`, and `x`, `v`, `m` per block (`A.x`)."""
        lines = text.strip().splitlines()
        head = HEADER.fullmatch(lines[0].strip()) if lines else None
        if head is None:
            return None
        fields = dict(zip(("tick", "track", "friction", "collisions"), head.groups(), strict=True))
        for line in lines[1:]:
            block = BLOCK.fullmatch(line.strip())
            if block is None or f"{block[1]}.x" in fields:
                return None
            fields.update({f"{block[1]}.x": block[2], f"{block[1]}.v": block[3], f"{block[1]}.m": block[4]})
        return fields

