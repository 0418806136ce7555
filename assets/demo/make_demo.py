"""Writes assets/demo/{train,dev}.tsv: the small sentiment set of addrop-studio.

Not part of the library; kept so the data can be regenerated or extended. Every phrase below was written for
this project. A sentence is either a whole hand-written one or "[opener] subject comment. [closer]", where the
subject and comment come from the same group so that they fit together. The split is balanced per class and
per domain, duplicates are removed, and no sentence is in both splits.

Run: python assets/demo/make_demo.py   (deterministic: the same seed writes the same files)
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

SEED = 13
PER_DOMAIN_CLASS = 45  # 6 domains x 45 = 270 sentences per class
DEV_COUNTS = [12, 12, 12, 12, 11, 11]  # dev sentences per domain and class: 70 per class, 200 left for train
MAX_USES = 3  # times one comment may appear in composed sentences

# domain -> {"groups": [(subjects, pos comments, neg comments)], closers and whole sentences per class}.
# Comments follow a singular subject. Mild comments ("was pretty good", "was a little disappointing") are
# still clearly one class; negated ones ("was not bad at all") are on purpose.
DOMAINS = {
    "movies": {
        "groups": [
            (["The movie", "This film", "The sequel", "The new thriller", "The remake", "The director's latest",
              "The indie drama", "The animated feature"],
             ["was gripping from start to finish", "had a clever script and a terrific cast",
              "made me laugh harder than anything I have seen this year",
              "was beautifully shot and surprisingly moving", "kept the whole theater on the edge of their seats",
              "was not bad at all", "had me in tears by the end", "told a warm, funny story with a big heart",
              "was worth every penny of the ticket", "surprised me in the best possible way", "was pretty good",
              "never dragged, even at nearly three hours", "had a soundtrack I still can't stop humming"],
             ["was a total waste of two hours", "dragged on long after the plot ran out",
              "had wooden acting and a predictable ending", "was loud, messy and oddly boring",
              "was not worth the ticket price", "never figured out what it wanted to be",
              "put half the audience to sleep", "was a little disappointing",
              "felt like a cheap copy of better films", "was full of clumsy dialogue",
              "was not funny, not scary and not smart", "wasted a talented cast on a silly story",
              "lost me within the first twenty minutes", "was forgettable at best"]),
            (["The sequel", "The remake"],
             ["turned out better than the original"],
             ["did not come close to the original"]),
        ],
        "pos_close": ["I would happily watch it again.", "Go see it.", "Easily one of my favorites this year.",
                      "The cast clearly had fun."],
        "neg_close": ["Skip it.", "I nearly walked out.", "Wait until it is free, or better, don't bother.",
                      "What a letdown."],
        "pos_whole": ["Loved every minute of it.", "One of the best films I have seen in years.",
                      "The ending was perfect and earned every emotion.",
                      "A charming little movie that deserves a much bigger audience.",
                      "I did not expect to enjoy it this much.", "Smart, funny and never once boring.",
                      "The lead actress gives the performance of her career.",
                      "I left the cinema grinning like a kid."],
        "neg_whole": ["I walked out halfway through.", "Two hours I will never get back.",
                      "The jokes fell flat every single time.", "Not even the special effects could save it.",
                      "A dull, muddled mess of a movie.", "I kept checking my watch.",
                      "The trailer was better than the whole film.",
                      "Nobody in our group could explain the plot afterwards."],
    },
    "restaurants": {
        "groups": [
            (["The pasta", "The pizza", "The curry", "The seafood platter", "The ramen", "The chocolate cake",
              "The tasting menu", "The burger"],
             ["was fresh, generous and full of flavor", "was absolutely delicious",
              "was not bad at all for the price", "was the best I have had in this city",
              "came out hot and perfectly seasoned", "was worth the long wait", "was simple but really well done",
              "was pretty good", "tasted like it was made with real care", "was a lovely surprise"],
             ["was cold by the time it reached our table", "was bland and badly overpriced",
              "left us feeling slightly sick", "was greasy and tasted reheated",
              "was a little too salty for my taste", "looked nothing like the photos online",
              "arrived burnt on one side and raw on the other", "was mediocre at best",
              "was tiny for what they charge", "was a huge disappointment"]),
            (["The service", "Our waiter"],
             ["was friendly, fast and attentive", "exceeded every expectation we had", "was not bad at all",
              "was pretty good"],
             ["was rude from the moment we sat down", "was slow and forgot half our order",
              "was a little disappointing"]),
            (["The new ramen place", "That little bakery", "The bistro on the corner", "The food truck"],
             ["made our anniversary feel special", "was worth the trip across town", "never disappoints"],
             ["was not worth the forty minute wait", "has clearly gone downhill since last year",
              "was forgettable and far too expensive"]),
        ],
        "pos_close": ["We will definitely be back.", "I'd go back in a heartbeat.",
                      "Book a table before everyone finds out.", "Save room for dessert."],
        "neg_close": ["We won't be returning.", "Never again.", "Eat somewhere else.",
                      "We left hungry and annoyed."],
        "pos_whole": ["The waiter remembered our order from last time, which was a lovely touch.",
                      "Best tacos in town, hands down.",
                      "Cozy room, great wine list, and the staff were wonderful.",
                      "I still think about that chocolate tart.", "Good food at an honest price.",
                      "Everything we ordered was spot on.", "The kitchen handled my allergy with real care.",
                      "Not a single dish missed."],
        "neg_whole": ["We waited an hour and the order was still wrong.",
                      "The soup tasted like it came from a can.",
                      "Sticky tables, slow staff and lukewarm coffee.",
                      "Way too expensive for such small portions.",
                      "I found a hair in my salad and nobody apologized.",
                      "The music was so loud we could not hear each other.",
                      "The fries were soggy and the burger was dry.", "Honestly not worth the hype."],
    },
    "products": {
        "groups": [
            (["This blender", "My new laptop", "The vacuum cleaner", "This headset", "The coffee maker",
              "The electric kettle", "This keyboard", "The robot mop"],
             ["works exactly as described", "was easy to set up and feels very solid",
              "has been flawless for six months", "is not bad at all for the money",
              "does everything I need and more", "feels well made and looks great",
              "is pretty good for everyday use", "arrived early and works perfectly",
              "has made my mornings so much easier", "has not let me down once", "was worth every cent"],
             ["stopped working after two weeks", "broke the first time I used it", "feels cheap and flimsy",
              "is far too loud to use at night", "was not worth the money", "arrived scratched and missing a part",
              "overheats after ten minutes", "is a little disappointing for the price", "never worked properly",
              "died just after the warranty ran out", "was a waste of money"]),
            (["My new laptop", "This headset", "The cordless drill", "This phone"],
             ["has a battery that lasts for days"],
             ["has a battery that barely lasts a morning"]),
            (["The phone case", "This backpack", "The desk lamp", "The rain jacket"],
             ["is sturdy and better looking than I expected", "was a great value"],
             ["looks nothing like the pictures", "fell apart within a month"]),
        ],
        "pos_close": ["Highly recommended.", "I already bought a second one as a gift.", "Five stars from me.",
                      "Very happy with it."],
        "neg_close": ["I'm sending it back.", "Save your money.", "Do not buy this.", "One star is generous."],
        "pos_whole": ["Great quality for the price.", "Exactly what I was looking for.",
                      "Sturdy, light and well designed.",
                      "I was skeptical at first, but it has turned out to be one of my best purchases.",
                      "Setup took two minutes and it just works.", "My whole family uses it every day.",
                      "Better than the expensive brand I had before.",
                      "The instructions were clear and nothing was missing."],
        "neg_whole": ["Cheap plastic that cracked within a week.", "The lid never closed properly.",
                      "Customer support ignored my emails about the defect.",
                      "It smells of burnt plastic every time I turn it on.",
                      "Worst purchase I have made all year.", "The buttons stopped responding after a month.",
                      "It does not fit the model it claims to fit.",
                      "The screen flickers constantly and the charger is already frayed."],
    },
    "travel": {
        "groups": [
            (["The hotel", "The room", "The beach resort", "The hostel", "Our rental cabin", "The guesthouse"],
             ["was spotless and the staff were lovely", "had stunning views from every window",
              "was not bad at all considering the price", "was relaxing, quiet and very clean",
              "felt like a real bargain", "was pretty good overall", "made us want to stay another week",
              "was comfortable and close to everything"],
             ["was dirty and smelled of smoke", "was noisy all night long",
              "was nothing like the photos on the website", "was not worth half of what we paid",
              "had broken air conditioning in the middle of summer", "felt unsafe after dark",
              "was overpriced and far from everything", "was a little disappointing"]),
            (["Our flight", "The train ride", "The ferry crossing", "The airport transfer"],
             ["left on time and the crew were wonderful", "went more smoothly than I expected",
              "was not bad at all", "was comfortable and right on schedule"],
             ["was delayed for six hours without an explanation", "was cancelled at the last minute",
              "was cramped, late and exhausting", "was a little disappointing"]),
            (["The guided tour", "The city walking tour", "The cruise", "The day trip to the lakes"],
             ["was the highlight of our whole trip", "was well organized and great fun",
              "had a guide who clearly loved the place", "exceeded all of our expectations"],
             ["was crowded, rushed and badly organized", "ruined the first days of our holiday",
              "was tiring and mostly a waste of time", "had a guide who did not seem to care"]),
        ],
        "pos_close": ["We are already planning to go back.", "Highly recommend it.",
                      "It was worth the trip on its own.", "Would book again without a second thought."],
        "neg_close": ["Never again.", "Book somewhere else.", "We went home early.",
                      "I would not send my worst enemy there."],
        "pos_whole": ["The sunsets alone were worth the trip.", "Our guide made the history come alive.",
                      "Clean rooms, kind staff and an amazing breakfast.",
                      "Check-in took two minutes and they upgraded our room for free.",
                      "A perfect weekend away.",
                      "The airline found my lost bag and delivered it the same day.",
                      "Quiet, peaceful and exactly what we needed.",
                      "Everything ran on time, which felt like a small miracle."],
        "neg_whole": ["The airline lost our luggage and never called back.",
                      "Cockroaches in the bathroom on the first night.",
                      "The pool was closed for our entire stay.", "Four hours on the tarmac with no water.",
                      "The tour felt like one long sales pitch.",
                      "Our booking had vanished when we arrived at midnight.",
                      "Paper-thin walls and a bed that sagged in the middle.",
                      "Nothing about this trip went according to plan."],
    },
    "books": {
        "groups": [
            (["The novel", "This memoir", "The second book in the series", "The new mystery",
              "The short story collection", "The biography", "The fantasy epic", "The graphic novel"],
             ["was impossible to put down", "had characters I came to love",
              "was beautifully written and deeply moving", "was not bad at all for a debut",
              "kept me guessing until the very last page", "was funny, sharp and surprisingly tender",
              "was pretty good", "had a twist I never saw coming", "was a pleasure to read",
              "stayed with me for weeks", "made a long flight fly by"],
             ["was a slog to get through", "had flat characters and a plot full of holes",
              "was not worth finishing", "felt twice as long as it needed to be",
              "was a little disappointing after all the hype",
              "ended so abruptly I thought pages were missing", "was dull and painfully slow",
              "was full of typos and clumsy sentences", "never made me care about anyone in it",
              "was predictable from the first chapter", "was forgettable"]),
            (["The audiobook"],
             ["was read by a narrator with a wonderful voice"],
             ["was read in a flat, sleepy voice"]),
            (["This cookbook", "The gardening guide", "The history textbook"],
             ["explains things more clearly than any teacher could", "is clear, practical and lovely to look at"],
             ["repeated the same idea for three hundred pages", "is full of mistakes and vague instructions"]),
        ],
        "pos_close": ["I recommend it to everyone I meet.", "Already ordering the next one.",
                      "A real gem.", "Five stars."],
        "neg_close": ["I gave up halfway.", "Save yourself the time.", "Very disappointing.",
                      "I returned it the next day."],
        "pos_whole": ["I read it in a single sitting.", "The best book I have read this year.",
                      "Every chapter ends with a reason to keep going.",
                      "Funny, heartbreaking and wise all at once.",
                      "My book club could not stop talking about it.",
                      "The writing is so good I kept rereading paragraphs.",
                      "A gentle, lovely story that made me smile.", "I bought extra copies to give to friends."],
        "neg_whole": ["I could not get past the second chapter.",
                      "The ending ruined everything that came before.",
                      "Dull characters and a plot that goes nowhere.",
                      "Three hundred pages of nothing happening.", "The translation is stiff and awkward.",
                      "I kept waiting for it to get better and it never did.",
                      "Half the recipes burned at the suggested temperature.",
                      "Not the masterpiece everyone promised."],
    },
    "services": {
        "groups": [
            (["The plumber", "The electrician", "The cleaning service", "The repair shop",
              "The moving company", "The locksmith"],
             ["was quick, polite and fairly priced", "arrived early and was very careful",
              "fixed the problem for less than the quote", "did a careful, tidy job", "was not bad at all",
              "was pretty good", "went above and beyond for us", "was worth every penny"],
             ["never showed up for the appointment", "left the job half finished",
              "was late, careless and expensive", "made a simple problem much worse",
              "broke two of our chairs and denied it", "was not worth the money",
              "was a little slow to get started", "was disappointing from start to finish"]),
            (["Customer support", "The bank's help line", "My internet provider", "The insurance company",
              "The phone company"],
             ["solved my problem in a single call", "was friendly and explained everything clearly",
              "kept me updated at every step", "sorted everything out without any fuss",
              "was not bad at all this time", "treated me like a person, not a ticket number"],
             ["kept me on hold for over an hour", "charged me twice and refused to fix it",
              "was rude and completely unhelpful", "gave me three different answers to the same question",
              "ignored every email I sent", "was a little slow to respond"]),
            (["The hair salon", "The dentist's office", "The vet clinic"],
             ["treated us like regulars from day one", "was calm, kind and on time"],
             ["double-booked my appointment and sent me home", "rushed through everything"]),
        ],
        "pos_close": ["I will definitely use them again.", "Highly recommended.", "Thank you, team!",
                      "Great experience overall."],
        "neg_close": ["I'm switching to someone else.", "Avoid them.", "I had to pay someone else to fix it.",
                      "Terrible experience."],
        "pos_whole": ["They fixed the leak in twenty minutes and cleaned up afterwards.",
                      "The agent stayed on the line until everything worked.",
                      "Fair prices and honest advice.",
                      "My package arrived a day early and perfectly packed.",
                      "Best haircut I have had in years.", "They answered the phone on the first ring.",
                      "The movers wrapped every piece of furniture with care.",
                      "I was nervous about the appointment, but the whole team put me at ease."],
        "neg_whole": ["Nobody answered the phone for three days.",
                      "The technician arrived four hours late and left without fixing anything.",
                      "They closed my ticket without solving the problem.",
                      "Hidden fees everywhere on the final bill.", "The package was left in the rain.",
                      "I had to explain my issue to six different people.",
                      "The refund still has not arrived after two months.",
                      "Worst customer service I have ever dealt with."],
    },
}

OPENERS = {
    "pos": ["", "", "", "", "Honestly, ", "Overall, ", "I thought ", "All in all, ", "To my surprise, ",
            "Happily, "],
    "neg": ["", "", "", "", "Honestly, ", "Overall, ", "I thought ", "All in all, ", "Sadly, ",
            "Unfortunately, "],
}
PRESENT = {"is", "has", "works", "does", "feels", "looks"}


def compose(rng: random.Random, dom: dict, cls: str) -> tuple[str, str]:
    """One composed sentence and the comment it uses."""
    groups = dom["groups"]
    weights = [len(g[1 if cls == "pos" else 2]) for g in groups]
    subjects, pos, neg = rng.choices(groups, weights=weights)[0]
    comment = rng.choice(pos if cls == "pos" else neg)
    subj = rng.choice(subjects)
    opener = rng.choice(OPENERS[cls])
    if opener == "I thought " and comment.split()[0] in PRESENT:
        opener = ""  # "I thought the lamp is ..." reads badly
    if opener:
        subj = subj[0].lower() + subj[1:]
    s = f"{opener}{subj} {comment}."
    if rng.random() < 0.45:
        closer = rng.choice(dom[f"{cls}_close"])
        if not (opener and opener.split()[0].rstrip(",").lower() in closer.lower()):  # no "Overall, ... overall."
            s += " " + closer
    return s, comment


def main() -> None:
    rng = random.Random(SEED)
    seen: set[str] = set()
    out: dict[str, list] = {"train": [], "dev": []}
    for d_i, dom in enumerate(DOMAINS.values()):
        for cls, label in (("neg", 0), ("pos", 1)):
            sents = list(dom[f"{cls}_whole"])
            uses: dict[str, int] = {}
            for _ in range(20000):
                if len(sents) >= PER_DOMAIN_CLASS:
                    break
                s, comment = compose(rng, dom, cls)
                if uses.get(comment, 0) >= MAX_USES or s.lower() in seen or not 4 <= len(s.split()) <= 30:
                    continue
                uses[comment] = uses.get(comment, 0) + 1
                seen.add(s.lower())
                sents.append(s)
            assert len(sents) == PER_DOMAIN_CLASS, (d_i, cls, len(sents))
            rng.shuffle(sents)
            k = DEV_COUNTS[d_i]
            out["dev"] += [(s, label) for s in sents[:k]]
            out["train"] += [(s, label) for s in sents[k:]]
    here = Path(__file__).resolve().parent
    for split, rows in out.items():
        rng.shuffle(rows)
        with open(here / f"{split}.tsv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
            w.writerow(["sentence", "label"])
            w.writerows(rows)
        print(split, len(rows), "positive:", sum(l for _, l in rows))


if __name__ == "__main__":
    main()
