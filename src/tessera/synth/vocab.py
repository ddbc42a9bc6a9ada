"""Closed vocabularies and question templates of the synthetic tasks.

Everything a generated question or answer can contain is listed here, so that the data stays learnable by a tiny
model (few distinct answers, a handful of phrasings per task) and so that :func:`tessera.synth.text_corpus` can
enumerate every string for tokenizer training.
"""

from __future__ import annotations

# Tasks, in the order used for round-robin test splits.
TASKS = ("count", "color", "shape", "position", "read", "chart")
# Training-only tasks (never in a test split): dense supervision that teaches the model where to look.
TRAIN_TASKS = ("describe", "locate", "tally", "paint", "tally_kind")
# Which image kind answers which task.
TASK_KIND = {
    "describe": "shapes",
    "locate": "shapes",
    "tally": "shapes",
    "paint": "shapes",
    "tally_kind": "shapes",
    "count": "shapes",
    "color": "shapes",
    "shape": "shapes",
    "position": "shapes",
    "read": "document",
    "chart": "chart",
}

# Shape colours: name -> RGB. Chosen far apart in hue so that a downscaled tile still tells them apart.
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 150, 50),
    "blue": (30, 70, 220),
    "yellow": (235, 195, 20),
    "purple": (140, 50, 180),
    "orange": (245, 125, 15),
}
COLORS_ZH = {
    "red": "红色",
    "green": "绿色",
    "blue": "蓝色",
    "yellow": "黄色",
    "purple": "紫色",
    "orange": "橙色",
}
SHAPES = ("circle", "square", "triangle", "star")
SHAPES_PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars"}
SHAPES_ZH = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "star": "星形"}
MAX_SHAPES = 6

# 3x3 layout cells, row-major: index = 3 * row + col.
POSITIONS = (
    "top left",
    "top center",
    "top right",
    "middle left",
    "center",
    "middle right",
    "bottom left",
    "bottom center",
    "bottom right",
)

# Page words: all four letters (same width in a monospaced font, so length gives no hint), distinct spellings.
WORDS = (
    "bird", "book", "cake", "coin", "corn", "door", "drum", "fish",
    "fork", "frog", "gold", "hand", "king", "kite", "lamp", "leaf",
    "lion", "mask", "milk", "moon", "nest", "pear", "ring", "rose",
    "salt", "ship", "shoe", "sock", "star", "tree", "wolf", "yarn",
)  # fmt: skip
# Page numbers are three digits, drawn from this range.
NUMBER_RANGE = (100, 999)
# Colours of the boxes that mark a page cell; the question names the colour.
BOX_COLORS = {"red": (230, 20, 20), "blue": (20, 60, 235), "green": (20, 160, 40)}

# Chart labels (three letters, monospaced) and values.
CHART_LABELS = ("ant", "bee", "cat", "cow", "dog", "elk", "fox", "hen", "owl", "pig", "rat", "yak")
CHART_VALUES = (1, 9)
CHART_BAR_COLORS = ((70, 110, 200), (200, 90, 60), (80, 160, 90), (150, 100, 180))

# Question templates. Placeholders: {color} {kind} {kinds} {pos} {box} {label}.
Q_COUNT_ALL = ("How many shapes are there?", "How many shapes are in the image?", "Count the shapes.")
Q_COUNT_COLOR = ("How many {color} shapes are there?", "Count the {color} shapes.")
Q_COUNT_KIND = ("How many {kinds} are there?", "Count the {kinds}.")
Q_COLOR_KIND = ("What color is the {kind}?", "What is the color of the {kind}?")
Q_COLOR_POS = ("What color is the shape in the {pos}?",)
Q_SHAPE_POS = ("What shape is in the {pos}?",)
Q_SHAPE_COLOR = ("Which shape is {color}?", "What shape is the {color} one?")
Q_POSITION = ("Where is the {color} {kind}?", "In which part of the image is the {color} {kind}?")
Q_DESCRIBE = ("Describe the image.", "What is in each part of the image?")
Q_LOCATE = ("Where is each shape?", "In which part of the image is each shape?")
Q_TALLY = ("How many shapes of each color are there?", "Count the shapes of each color.")
Q_PAINT = ("What color is each shape?", "Name the color of each shape.")
Q_TALLY_KIND = ("How many shapes of each kind are there?", "Count the shapes of each kind.")
Q_READ = (
    "What is written in the {box} box?",
    "What word or number is in the {box} box?",
    "Read the text in the {box} box.",
)
Q_CHART_VALUE = ("What is the value of {label}?", "What value does {label} have?")
Q_CHART_MAX = ("Which label has the largest value?",)
Q_CHART_MIN = ("Which label has the smallest value?",)
Q_BAR_MAX = ("Which bar is the tallest?",)
Q_BAR_MIN = ("Which bar is the shortest?",)

# Chinese phrasings (count and colour questions only); answers are digits or the Chinese colour names above.
Q_COUNT_ALL_ZH = ("图中有几个形状？", "图片里一共有多少个形状？")
Q_COUNT_COLOR_ZH = ("图中有几个{color}的形状？",)
Q_COUNT_KIND_ZH = ("图中有几个{kind}？",)
Q_COLOR_KIND_ZH = ("{kind}是什么颜色？", "图中的{kind}是什么颜色的？")

# The system message of the internlm2-chat template at the time of the V1-5 releases (fact sheet, conformance
# README); the bundled model is trained and served with it.
SYSTEM_MESSAGE = "You are an AI assistant whose name is InternLM (书生·浦语)."
# The default of the official template at the fixtures' commit, kept in the tokenizer corpus too.
SYSTEM_MESSAGE_LATER = (
    "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"
)
