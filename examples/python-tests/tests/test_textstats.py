import socket

import pytest

from textstats import top_words, word_count


def test_word_count():
    assert word_count("one two  three") == 3
    assert word_count("") == 0


def test_top_words_orders_by_count_then_word():
    assert top_words("b a b c a b") == [("b", 3), ("a", 2), ("c", 1)]


def test_punctuation_is_stripped():
    assert top_words("Hi! hi, HI.") == [("hi", 3)]


def test_the_agent_phase_is_offline():
    with pytest.raises(OSError):
        socket.create_connection(("example.com", 443), timeout=3)
