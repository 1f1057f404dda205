"""Word lists and name syllables the fictitious world is drawn from. Pure data, no logic."""

from __future__ import annotations

ONSETS = ["b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "r", "s", "sh", "t", "th", "v",
          "w", "z", "st", "tr", "j", "ch"]
NUCLEI = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou"]
CODAS = ["", "", "n", "r", "l", "s", "th", "m", "nd", "rk", "sk", "v", "x", "ll"]

GENRES = [
    "maritime mystery", "pastoral poetry", "political satire", "gothic romance", "speculative fiction",
    "historical drama", "comic fantasy", "crime noir", "nature writing", "epic verse", "psychological thriller",
    "children's fables", "travel memoir", "philosophical essays", "war fiction", "magical realism",
    "courtroom drama", "folk horror", "family saga", "science writing",
]
OCCUPATIONS = [
    "glassblower", "lighthouse keeper", "cartographer", "tax collector", "beekeeper", "ferry captain", "weaver",
    "clockmaker", "schoolteacher", "stonemason", "botanist", "bookbinder", "river pilot", "tailor", "astronomer",
    "surgeon", "miller", "archivist", "shipwright", "violin maker", "judge", "apothecary", "goldsmith",
    "railway engineer", "midwife", "fisherman", "baker", "librarian", "potter", "diplomat",
]
AWARDS = [
    "Amber Quill Prize", "Harbor Lantern Award", "Silver Heron Medal", "Meridian Book Prize", "Iron Compass Award",
    "Velvet Owl Prize", "Northlight Fellowship", "Cobalt Pen Award", "Granite Laurel", "Tidewater Medal",
    "Golden Loom Prize", "Willow Crown Award",
]
THEMES = [
    "grief and memory", "exile and return", "the sea and its silence", "power and betrayal", "childhood and loss",
    "faith and doubt", "the city at night", "war and forgiveness", "love across borders", "science and wonder",
    "debt and family duty", "the burden of secrets", "migration and belonging", "madness and art",
    "time and decay", "justice and revenge",
]
ADJECTIVES = ["Salt", "Hollow", "Silent", "Crimson", "Winter", "Paper", "Broken", "Quiet", "Distant", "Amber",
              "Iron", "Hidden", "Last", "Drowned", "Golden", "Burning", "Pale", "Wandering", "Lost", "Seventh"]
NOUNS = ["Orchard", "Lantern", "Harbor", "Mirror", "Garden", "Bell", "Archive", "Bridge", "Tide", "Clock", "Forest",
         "Letter", "Compass", "Staircase", "Meadow", "Ledger", "Tower", "Violin", "Island", "Kingdom"]
TITLE_PATTERNS = ["The {adj} {noun}", "A {noun} for {place}", "The {noun} of {place}", "{adj} {noun}s",
                  "Beneath the {adj} {noun}", "The {adj} {noun} of {place}"]
UNIVERSITY_PATTERNS = ["University of {city}", "{city} Academy of Letters", "{city} Institute", "College of {city}"]
DISHES = ["smoked eel", "barley stew", "honey bread", "salted plums", "fish dumplings", "lamb pie", "red lentil soup",
          "pickled herring", "chestnut cake", "goat cheese pastry", "pepper broth", "onion tart"]
CURRENCIES = ["crown", "mark", "florin", "dinar", "shell", "talent", "ducat", "obol", "sovereign", "penny", "rand",
              "lira"]
LANDSCAPES = ["a harbour town", "a mountain village", "a river port", "a market town", "an island town",
              "a mining town", "a university city", "a border town", "a fishing village", "a walled city"]
