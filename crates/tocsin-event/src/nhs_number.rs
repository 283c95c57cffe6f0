//! The NHS number modulus-11 check.

use thiserror::Error;

/// Why a value is not a valid NHS number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NhsNumberError {
    /// Not ten digits once spaces and hyphens are removed.
    #[error("an NHS number has ten digits; this value has {0} characters after removing spaces")]
    Length(usize),
    /// Contains something other than digits, spaces and hyphens.
    #[error("an NHS number holds only digits")]
    NotDigits,
    /// The modulus-11 check digit does not match.
    #[error("the NHS number check digit does not match (modulus 11)")]
    CheckDigit,
    /// Ten of one digit (`0000000000`, `9999999999`): it passes the check
    /// digit, but systems send it as a placeholder for a patient not yet
    /// traced, and every such patient would share it (one's document
    /// settling another's discharge).
    #[error("ten of one digit is a placeholder for an untraced patient, not an NHS number")]
    Placeholder,
}

/// Validates an NHS number by the modulus-11 algorithm and returns it as ten
/// digits (spaces and hyphens, as in `943 476 5919`, are removed).
///
/// Weights 10 down to 2 over the first nine digits; the check digit is
/// `11 - (sum mod 11)`, with 11 read as 0 and 10 meaning the number is invalid.
pub fn validate_nhs_number(raw: &str) -> Result<String, NhsNumberError> {
    let mut digits = [0u32; 10];
    let mut n = 0usize;
    for c in raw.trim().chars() {
        match c {
            ' ' | '-' => continue,
            '0'..='9' => {
                if n < 10 {
                    digits[n] = c as u32 - '0' as u32;
                }
                n += 1;
            }
            _ => return Err(NhsNumberError::NotDigits),
        }
    }
    if n != 10 {
        return Err(NhsNumberError::Length(n));
    }
    let sum: u32 = digits[..9]
        .iter()
        .enumerate()
        .map(|(i, d)| d * (10 - i as u32))
        .sum();
    let check = match 11 - (sum % 11) {
        11 => 0,
        10 => return Err(NhsNumberError::CheckDigit),
        c => c,
    };
    if check != digits[9] {
        return Err(NhsNumberError::CheckDigit);
    }
    if digits.iter().all(|d| *d == digits[0]) {
        return Err(NhsNumberError::Placeholder);
    }
    Ok(digits.iter().map(|d| char::from(b'0' + *d as u8)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_numbers_in_common_layouts() {
        // 943 476 5919 is the NHS Digital published test number.
        assert_eq!(validate_nhs_number("9434765919").unwrap(), "9434765919");
        assert_eq!(validate_nhs_number("943 476 5919").unwrap(), "9434765919");
        assert_eq!(validate_nhs_number("943-476-5919").unwrap(), "9434765919");
    }

    #[test]
    fn placeholders_of_one_digit_are_refused_though_their_check_digit_matches() {
        for d in '0'..='9' {
            let n: String = std::iter::repeat_n(d, 10).collect();
            assert_eq!(
                validate_nhs_number(&n),
                Err(NhsNumberError::Placeholder),
                "{n}"
            );
        }
    }

    #[test]
    fn rejects_bad_check_digit_length_and_letters() {
        assert_eq!(
            validate_nhs_number("9434765918"),
            Err(NhsNumberError::CheckDigit)
        );
        assert_eq!(
            validate_nhs_number("943476591"),
            Err(NhsNumberError::Length(9))
        );
        assert_eq!(
            validate_nhs_number("94347659190"),
            Err(NhsNumberError::Length(11))
        );
        assert_eq!(
            validate_nhs_number("94347A5919"),
            Err(NhsNumberError::NotDigits)
        );
        assert_eq!(validate_nhs_number(""), Err(NhsNumberError::Length(0)));
    }

    #[test]
    fn remainder_ten_is_never_valid() {
        // 1000000010: weights give sum 10*1 + 2*1 = 12 -> 11 - 1 = 10 -> invalid
        // whatever the last digit.
        for last in 0..10 {
            let s = format!("100000001{last}");
            assert_eq!(
                validate_nhs_number(&s),
                Err(NhsNumberError::CheckDigit),
                "{s}"
            );
        }
    }
}
