"""Prints N short sentences (8 to 16 words, about 10 to 20 tokens), the same every run:
the texts both benchmarks in benchmarks/browser/ embed.  Usage: python3 make_texts.py [N]"""
import random
import sys

WORDS = ("model weights browser content address verified graph tensor kernel shader batch token "
         "sentence embedding vector cache worker adapter device memory network layer attention "
         "query answer search meaning similar distance river mountain city music garden light").split()
r = random.Random(7)
for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 16):
    print(" ".join(r.choice(WORDS) for _ in range(8 + i % 9)).capitalize() + ".")
