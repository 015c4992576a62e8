"""Request numbers are 7 digits a caller can key in; a slip of one key is caught."""

from __future__ import annotations

from core.numbers import check_digit, completion_code, is_valid, new_request_number


def test_a_new_number_is_seven_digits_and_valid() -> None:
    for _ in range(500):
        number = new_request_number()
        assert len(number) == 7
        assert number.isdigit()
        assert number[0] != "0"
        assert is_valid(number)


def test_verhoeff_check_digit_of_the_textbook_example() -> None:
    assert check_digit("236") == "3"
    assert is_valid("2363000") is False  # right length, wrong check digit


def test_every_single_wrong_key_is_caught() -> None:
    number = new_request_number()
    for position in range(7):
        for digit in "0123456789":
            if digit != number[position]:
                assert not is_valid(number[:position] + digit + number[position + 1 :])


def test_every_swap_of_neighbouring_keys_is_caught() -> None:
    for _ in range(200):
        number = new_request_number()
        for i in range(6):
            if number[i] != number[i + 1]:
                swapped = number[:i] + number[i + 1] + number[i] + number[i + 2 :]
                assert not is_valid(swapped)


def test_garbage_is_not_a_request_number() -> None:
    for text in ["", "123", "12345678", "abcdefg", "0123456", " 123456"]:
        assert not is_valid(text)


def test_completion_codes_are_four_digits() -> None:
    codes = {completion_code() for _ in range(200)}
    assert all(len(c) == 4 and c.isdigit() for c in codes)
    assert len(codes) > 150
