"""n-to-n: tag every word of a travel phrase — is the city the origin or the destination?

"arrive Beijing on November 2nd" makes Beijing the destination, "leave Beijing on November
2nd" makes it the origin. In half of the templates the cue comes *after* the city
("Beijing is where I start"), so a model that reads left to right cannot know the tag when
it reaches the city: a bidirectional LSTM sees the whole phrase. The script trains both a
bidirectional and a unidirectional LSTM with full BPTT over each phrase
(``sr.SequenceTrainer.fit``, cross-entropy on every word) and prints the accuracy on
held-out phrases: all words, city words, and city words whose cue comes after them.

    python examples/n_to_n_tagging.py [--quick] [--seed 0]
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

import streamrnn as sr

TAGS = ("other", "origin", "destination")
O, ORIG, DEST = 0, 1, 2
CITIES = ("Beijing", "Shanghai", "Paris", "London", "Tokyo", "Berlin", "Madrid", "Rome",
          "Cairo", "Delhi", "Lima", "Oslo")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
DAYS = ("1st", "2nd", "3rd", "4th", "5th", "9th", "12th", "20th", "21st", "30th")
# (template, tags of its slots, cue after the first city?) — {A} and {B} are cities, {D} a date
TEMPLATES: Tuple[Tuple[str, Tuple[int, ...], bool], ...] = (
    ("arrive {A} on {D}", (DEST,), False),
    ("leave {A} on {D}", (ORIG,), False),
    ("fly from {A} to {B} on {D}", (ORIG, DEST), False),
    ("on {D} travel to {A}", (DEST,), False),
    ("depart {A} for {B}", (ORIG, DEST), False),
    ("land in {A} on {D}", (DEST,), False),
    ("{A} is my destination", (DEST,), True),
    ("{A} is where I start", (ORIG,), True),
    ("on {D} {A} is where I leave from", (ORIG,), True),
    ("on {D} {A} is where I arrive", (DEST,), True),
    ("{A} then {B} is the route", (ORIG, DEST), True),
    ("{A} is the end and {B} the start", (DEST, ORIG), True),
)


def make_phrase(rng: np.random.Generator) -> Tuple[List[str], List[int], List[bool]]:
    """One phrase: its words, a tag per word, and per word whether it is a city whose cue
    comes after it."""
    template, slot_tags, cue_after = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    a, b = rng.choice(len(CITIES), size=2, replace=False)
    fill = {"{A}": CITIES[a], "{B}": CITIES[b]}
    words: List[str] = []
    tags: List[int] = []
    late: List[bool] = []
    for w in template.split():
        if w == "{D}":
            words += [MONTHS[int(rng.integers(12))], DAYS[int(rng.integers(len(DAYS)))]]
            tags += [O, O]
            late += [False, False]
        elif w in fill:
            words.append(fill[w])
            tags.append(slot_tags[0 if w == "{A}" else 1])
            late.append(cue_after and w == "{A}")   # {B}'s cue always comes before it
        else:
            words.append(w)
            tags.append(O)
            late.append(False)
    return words, tags, late


def vocabulary() -> Dict[str, int]:
    words = set(CITIES) | set(MONTHS) | set(DAYS)
    for t, _, _ in TEMPLATES:
        words |= {w for w in t.split() if not w.startswith("{")}
    return {w: i for i, w in enumerate(sorted(words))}


def one_hot(words: Sequence[str], vocab: Dict[str, int]) -> np.ndarray:
    """(T, V) float32 one-hot rows."""
    x = np.zeros((len(words), len(vocab)), dtype=np.float32)
    x[np.arange(len(words)), [vocab[w] for w in words]] = 1.0
    return x


def dataset(n: int, rng: np.random.Generator, vocab: Dict[str, int]):
    phrases = [make_phrase(rng) for _ in range(n)]
    X = [one_hot(w, vocab) for w, _, _ in phrases]
    Y = [np.array(t, dtype=np.int64) for _, t, _ in phrases]
    late = [np.array(l, dtype=bool) for _, _, l in phrases]
    return phrases, X, Y, late


def accuracy(trainer: sr.SequenceTrainer, X, Y, late) -> Dict[str, float]:
    pred = [trainer.predict(x).argmax(axis=1) for x in X]
    p, y, lt = np.concatenate(pred), np.concatenate(Y), np.concatenate(late)
    city = y != O
    return {"words": float((p == y).mean()), "cities": float((p[city] == y[city]).mean()),
            "cities, cue after": float((p[lt] == y[lt]).mean())}


def train(bidirectional: bool, X, Y, vocab, epochs: int, seed: int) -> sr.SequenceTrainer:
    net = sr.LSTM(len(vocab), 16, output_size=len(TAGS), bidirectional=bidirectional,
                  seed=seed)
    trainer = sr.SequenceTrainer(net, loss="cross_entropy", optimizer=sr.Adam(lr=1e-2),
                                 clip_norm=1.0)
    trainer.fit(X, Y, epochs=epochs, batch_size=8, seed=seed)
    return trainer


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer phrases and epochs (tests)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    vocab = vocabulary()
    n_train, epochs = (600, 4) if args.quick else (2000, 6)
    phrases, X, Y, _ = dataset(n_train, rng, vocab)
    test_phrases, Xt, Yt, late_t = dataset(500, rng, vocab)
    words, tags, _ = test_phrases[0]
    print("example:", " ".join(f"{w}/{TAGS[t]}" if t else w for w, t in zip(words, tags)))
    results = {}
    for bi in (True, False):
        name = "bidirectional LSTM" if bi else "unidirectional LSTM"
        t0 = time.perf_counter()
        trainer = train(bi, X, Y, vocab, epochs, args.seed)
        acc = accuracy(trainer, Xt, Yt, late_t)
        results[name] = acc
        print(f"{name:20s} accuracy on 500 held-out phrases: all words {acc['words']:.3f}, "
              f"city words {acc['cities']:.3f}, cities whose cue comes after "
              f"{acc['cities, cue after']:.3f}  ({time.perf_counter() - t0:.1f} s, "
              f"{n_train} phrases x {epochs} epochs)")
        for phrase in ("arrive Beijing on November 2nd", "leave Beijing on November 2nd",
                       "Beijing is my destination", "Beijing is where I start"):
            words = phrase.split()
            tags = trainer.predict(one_hot(words, vocab)).argmax(axis=1)
            print(f"    {phrase:32s} -> Beijing is the {TAGS[int(tags[words.index('Beijing')])]}")
    return results


if __name__ == "__main__":
    main()
