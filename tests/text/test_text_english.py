"""English expansion: each kind of written form, read exactly."""

from __future__ import annotations

import pytest

from voicepocket.text import expand_english
from voicepocket.text.english import RULES


def test_the_example_sentence() -> None:
    assert (
        expand_english("Dr. Smith paid $3.50 on May 5th.")
        == "Doctor Smith paid three dollars and fifty cents on May fifth."
    )


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("42", "forty-two"),
        (
            "1,234,567",
            "one million two hundred and thirty-four thousand five hundred and sixty-seven",
        ),
        ("1234", "one thousand two hundred and thirty-four"),
        ("3.14", "three point one four"),
        ("2.50", "two point five zero"),
        ("-5", "minus five"),
        ("it was -12.5 outside", "it was minus twelve point five outside"),
        ("pages 3-5", "pages three-five"),
        ("COVID-19", "COVID-nineteen"),
        ("mp3", "mp three"),
        ("007", "zero zero seven"),
        ("version 1.2.3", "version one point two point three"),
        ("#1 fan", "number one fan"),
    ],
)
def test_numbers(written: str, spoken: str) -> None:
    assert expand_english(written) == spoken


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("$3.50", "three dollars and fifty cents"),
        ("$1", "one dollar"),
        ("$1.01", "one dollar and one cent"),
        ("$0.99", "ninety-nine cents"),
        ("$0", "zero dollars"),
        ("$1,000", "one thousand dollars"),
        ("$5.5", "five dollars and fifty cents"),
        ("$1.2 million", "one point two million dollars"),
        ("$5M", "five million dollars"),
        ("£1.50", "one pound and fifty pence"),
        ("£0.01", "one penny"),
        ("€2", "two euros"),
        ("€1 billion", "one billion euros"),
        ("¥500", "five hundred yen"),
        ("-$5", "minus five dollars"),
        ("$3.505", "three point five zero five dollars"),
    ],
)
def test_money(written: str, spoken: str) -> None:
    assert expand_english(written) == spoken


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("50%", "fifty percent"),
        ("3.5 %", "three point five percent"),
        ("down -2%", "down minus two percent"),
    ],
)
def test_percentages(written: str, spoken: str) -> None:
    assert expand_english(written) == spoken


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("5th", "fifth"),
        ("21st", "twenty-first"),
        ("2nd", "second"),
        ("3rd", "third"),
        ("the 100th time", "the one hundredth time"),
        ("4th-century", "fourth-century"),
    ],
)
def test_ordinals(written: str, spoken: str) -> None:
    assert expand_english(written) == spoken


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("in 1999", "in nineteen ninety-nine"),
        ("In 2023, we", "In twenty twenty-three, we"),
        ("since 2005", "since two thousand and five"),
        ("from 1990-1999", "from nineteen ninety to nineteen ninety-nine"),
        ("between 1990 and 2000", "between nineteen ninety and two thousand"),
        ("1914-1918", "nineteen fourteen to nineteen eighteen"),
        ("May 2023", "May twenty twenty-three"),
        ("the 1990s", "the nineteen nineties"),
        ("the '80s", "the eighties"),
        ("44 BC", "forty-four B C"),
        # Without a year's context a four-digit number is a quantity.
        ("2023 apples", "two thousand and twenty-three apples"),
    ],
)
def test_years(written: str, spoken: str) -> None:
    assert expand_english(written) == spoken


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("May 5th", "May fifth"),
        ("May 5, 2023", "May fifth, twenty twenty-three"),
        ("on March 21 we", "on March twenty-first we"),
        ("Dec. 25th 2023", "December twenty-fifth twenty twenty-three"),
        ("Jan 1, 2000", "January first, two thousand"),
        ("Sept. 3", "September third"),
        # Not a day of the month: left to the number rule.
        ("May 45", "May forty-five"),
        # "may" the verb is not a month.
        ("you may 5 times", "you may five times"),
    ],
)
def test_dates(written: str, spoken: str) -> None:
    assert expand_english(written) == spoken


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("3:30 pm", "three thirty P M"),
        ("10:05", "ten oh five"),
        ("10:45", "ten forty-five"),
        ("3:00", "three o'clock"),
        ("3:00 PM", "three P M"),
        ("15:00", "fifteen hundred"),
        ("7am", "seven A M"),
        ("at 11 a.m. on Monday", "at eleven A M on Monday"),
        # The period of "p.m." doubles as a full stop before a new sentence or the end.
        ("at 5 p.m.", "at five P M."),
        ("at 5 p.m. Then we ate.", "at five P M. Then we ate."),
    ],
)
def test_times(written: str, spoken: str) -> None:
    assert expand_english(written) == spoken


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("Mr. and Mrs. Jones", "Mister and Missus Jones"),
        ("Ms. Lee", "Miz Lee"),
        ("Prof. Xu", "Professor Xu"),
        ("Dr. and Mrs. Smith", "Doctor and Missus Smith"),
        ("ask Dr. Who", "ask Doctor Who"),
        ("Elm Dr. is nice", "Elm Drive is nice"),
        ("I live on Elm Dr.", "I live on Elm Drive."),
        ("St. Louis", "Saint Louis"),
        ("Main St., Springfield", "Main Street, Springfield"),
        ("5th St.", "fifth Street."),
        ("Martin Luther King Jr. said", "Martin Luther King Junior said"),
        ("Mt. Everest", "Mount Everest"),
        ("Park Ave. is long", "Park Avenue is long"),
        ("cats vs. dogs", "cats versus dogs"),
        ("apples, pears, etc. and more", "apples, pears, et cetera and more"),
        ("fruit, e.g. apples", "fruit, for example apples"),
        ("E.g. apples", "For example apples"),
        ("one, i.e. this", "one, that is this"),
        ("approx. 5", "approximately five"),
        ("No. 5", "number five"),
        ("No. I refuse", "No. I refuse"),
        ("Acme Ltd. and Acme Co. merged", "Acme Limited and Acme Company merged"),
        ("Jan. and Feb.", "January and February."),
        ("U.S. Army", "U S Army"),
        ("John F. Kennedy", "John F Kennedy"),
        ("J. K. Rowling", "J K Rowling"),
        ("plan B. Then", "plan B. Then"),
        ("AT&T", "AT and T"),
    ],
)
def test_abbreviations(written: str, spoken: str) -> None:
    assert expand_english(written) == spoken


def test_an_abbreviation_that_ends_a_sentence_keeps_its_full_stop() -> None:
    assert expand_english("I work at Acme Inc. Then I go home.") == (
        "I work at Acme Incorporated. Then I go home."
    )
    assert expand_english("We bought apples etc.") == "We bought apples et cetera."


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("5 km", "five kilometers"),
        ("1 km", "one kilometer"),
        ("5km", "five kilometers"),
        ("2.5 kg", "two point five kilograms"),
        ("10 cm", "ten centimeters"),
        ("3mm", "three millimeters"),
        ("100 km/h", "one hundred kilometers per hour"),
        ("-3°C", "minus three degrees Celsius"),
        ("98.6 °F", "ninety-eight point six degrees Fahrenheit"),
        ("1°C", "one degree Celsius"),
        ("a 45° angle", "a forty-five degrees angle"),
        # "m" alone could be meters, minutes or million: left as a letter.
        ("5 m", "five m"),
    ],
)
def test_units(written: str, spoken: str) -> None:
    assert expand_english(written) == spoken


def test_text_without_anything_to_expand_is_unchanged() -> None:
    text = "The quick brown fox, jumping; over (the) lazy dog! Right? Yes..."
    assert expand_english(text) == text


def test_rule_names_are_unique() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
