//! Mock vehicle records derived deterministically from a SHA-256 of the requested VIN or plate.

use chrono::{Datelike, Days, Months, NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::{BRANDS, COLORS, INSURERS, PLATE_REGIONS, POLICY_SERIES};

/// Characters allowed in a VIN: digits and Latin capitals except `I`, `O` and `Q`.
pub const VIN_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ";

/// The 12 Cyrillic capitals that Russian plates use, the ones that look like Latin letters.
pub const PLATE_LETTERS: &str = "АВЕКМНОРСТУХ";

/// Maximum number of OSAGO records in one response.
const MAX_OSAGO_RECORDS: u64 = 3;

/// `data` of a successful AVINFO response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Vehicle {
    pub vin: String,
    pub plate: String,
    pub brand: BrandCode,
    pub model: &'static str,
    pub year: u64,
    /// AVINFO vehicle category: `A`, `B`, `C` or `D`.
    pub category: &'static str,
    pub power: Power,
    /// Engine displacement in cm3.
    pub engine_volume: u64,
    pub color: &'static str,
    pub osago: Vec<OsagoPolicy>,
}

/// AVINFO brand code and display name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BrandCode {
    pub code: &'static str,
    pub name: &'static str,
}

/// Engine power in horsepower and in kilowatts (hp * 0.7355, one decimal).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Power {
    pub hp: u64,
    pub kw: f64,
}

/// One OSAGO (compulsory motor insurance) policy record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OsagoPolicy {
    pub insurer: &'static str,
    /// Series and ten-digit number, such as `ХХХ 0123456789`.
    pub policy: String,
    /// First day of cover, `YYYY-MM-DD`.
    pub date_from: String,
    /// Last day of cover, `YYYY-MM-DD`.
    pub date_to: String,
    /// `active` when today lies within the cover, else `expired`.
    pub status: &'static str,
}

/// Source of deterministic choices: each field's value comes from SHA-256(digest || field name),
/// where the digest is the SHA-256 of the requested VIN or plate.
struct Seed {
    digest: [u8; 32],
}

impl Seed {
    fn new(text: &str) -> Self {
        Seed {
            digest: Sha256::digest(text.as_bytes()).into(),
        }
    }

    /// Returns a number in `0..bound`, always the same for the same text and field.
    fn below(&self, field: &str, bound: u64) -> u64 {
        let field_digest = Sha256::new()
            .chain_update(self.digest)
            .chain_update(field.as_bytes())
            .finalize();
        let mut leading = [0u8; 8];
        leading.copy_from_slice(&field_digest[..8]);
        u64::from_be_bytes(leading) % bound
    }

    /// Returns a number in `low..=high`.
    fn between(&self, field: &str, low: u64, high: u64) -> u64 {
        low + self.below(field, high - low + 1)
    }

    fn index(&self, field: &str, length: usize) -> usize {
        self.below(field, length as u64) as usize
    }

    fn choose<'a, T>(&self, field: &str, items: &'a [T]) -> &'a T {
        &items[self.index(field, items.len())]
    }

    fn choose_text(&self, field: &str, items: &[&'static str]) -> &'static str {
        items[self.index(field, items.len())]
    }

    fn choose_char(&self, field: &str, alphabet: &str) -> char {
        let characters: Vec<char> = alphabet.chars().collect();
        *self.choose(field, &characters)
    }
}

/// Converts horsepower to kilowatts, rounded to one decimal.
pub fn horsepower_to_kilowatts(hp: u64) -> f64 {
    (hp as f64 * 0.7355 * 10.0).round() / 10.0
}

/// Derives the plate registered to `vin`: letter, three digits (never `000`), two letters, region.
pub fn derive_plate(vin: &str) -> String {
    let seed = Seed::new(vin);
    let number = seed.between("plate number", 1, 999);
    format!(
        "{}{number:03}{}{}{}",
        seed.choose_char("plate letter 1", PLATE_LETTERS),
        seed.choose_char("plate letter 2", PLATE_LETTERS),
        seed.choose_char("plate letter 3", PLATE_LETTERS),
        seed.choose_text("plate region", &PLATE_REGIONS),
    )
}

/// Derives the VIN of the vehicle registered under `plate`. The VIN starts with the world
/// manufacturer identifier of a mock brand and never ends in `00000`.
pub fn derive_vin(plate: &str) -> String {
    let seed = Seed::new(plate);
    let brand = seed.choose("brand", &BRANDS);

    let mut vin = String::from(brand.wmi);
    for position in 4..=17 {
        vin.push(seed.choose_char(&format!("vin {position}"), VIN_ALPHABET));
    }

    // A VIN ending in 00000 is the mock's "not found" marker, so a derived one must not end so.
    if vin.ends_with("00000") {
        vin.pop();
        vin.push('1');
    }
    vin
}

/// Builds the vehicle record for a VIN lookup. A VIN that starts with a mock brand's world
/// manufacturer identifier (`XTA` for LADA, `WVW` for Volkswagen, ...) keeps that brand.
/// `osago` dates depend on today's date, every other field only on `vin`.
pub fn vehicle_for_vin(vin: &str) -> Vehicle {
    let seed = Seed::new(vin);
    let brand = BRANDS
        .iter()
        .find(|brand| vin.starts_with(brand.wmi))
        .unwrap_or_else(|| seed.choose("brand", &BRANDS));
    let model = seed.choose("model", brand.models);
    let year = seed.between("year", model.first_year, model.last_year);

    let hp = seed.between("power", 70, 250);
    // An estimate that keeps volume and power plausible together: 600 cm3 plus 12 cm3 per hp.
    let engine_volume = 600 + hp * 12 + seed.below("engine volume", 200);

    Vehicle {
        vin: vin.to_owned(),
        plate: derive_plate(vin),
        brand: BrandCode {
            code: brand.code,
            name: brand.name,
        },
        model: model.name,
        year,
        category: model.category,
        power: Power {
            hp,
            kw: horsepower_to_kilowatts(hp),
        },
        engine_volume,
        color: seed.choose_text("color", &COLORS),
        osago: osago_policies(&seed, year, Utc::now().date_naive()),
    }
}

/// Builds the vehicle record for a plate lookup: the record of the VIN that `derive_vin`
/// derives from `plate`, with `plate` in place of the plate that VIN would get.
pub fn vehicle_for_plate(plate: &str) -> Vehicle {
    let mut vehicle = vehicle_for_vin(&derive_vin(plate));
    vehicle.plate = plate.to_owned();
    vehicle
}

/// Builds 0 to 3 consecutive yearly OSAGO policies, oldest first. The newest one started within
/// the year before `today`, so it is active. No policy starts before the vehicle's model year.
fn osago_policies(seed: &Seed, model_year: u64, today: NaiveDate) -> Vec<OsagoPolicy> {
    let count = seed.below("osago count", MAX_OSAGO_RECORDS + 1);
    let newest_start = today - Days::new(seed.below("osago start", 365));

    let mut policies = Vec::new();
    for age in (0..count).rev() {
        let Some(date_from) = newest_start.checked_sub_months(Months::new(12 * age as u32)) else {
            continue;
        };
        if u64::try_from(date_from.year()).unwrap_or(0) < model_year {
            continue;
        }
        let date_to = date_from + Months::new(12) - Days::new(1);
        let status = if today <= date_to {
            "active"
        } else {
            "expired"
        };

        policies.push(OsagoPolicy {
            insurer: seed.choose_text(&format!("osago {age} insurer"), &INSURERS),
            policy: format!(
                "{} {:010}",
                seed.choose_text(&format!("osago {age} series"), &POLICY_SERIES),
                seed.below(&format!("osago {age} number"), 10_000_000_000)
            ),
            date_from: date_from.format("%Y-%m-%d").to_string(),
            date_to: date_to.format("%Y-%m-%d").to_string(),
            status,
        });
    }
    policies
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_vins(count: usize) -> Vec<String> {
        (0..count)
            .map(|index| derive_vin(&format!("sample {index}")))
            .collect()
    }

    fn is_valid_vin(vin: &str) -> bool {
        vin.chars().count() == 17 && vin.chars().all(|c| VIN_ALPHABET.contains(c))
    }

    #[test]
    fn kilowatts_round_to_one_decimal() {
        assert_eq!(horsepower_to_kilowatts(70), 51.5);
        assert_eq!(horsepower_to_kilowatts(100), 73.6);
        assert_eq!(horsepower_to_kilowatts(250), 183.9);
    }

    #[test]
    fn vin_record_is_deterministic() {
        let first = vehicle_for_vin("XTA21099043765432");
        let second = vehicle_for_vin("XTA21099043765432");
        assert_eq!(first, second);
        assert_ne!(first, vehicle_for_vin("XTA21099043765433"));
    }

    #[test]
    fn vin_keeps_brand_of_its_wmi() {
        assert_eq!(vehicle_for_vin("XTA21099043765432").brand.code, "VAZ");
        assert_eq!(
            vehicle_for_vin("WVWZZZ1KZ6W000001").brand.code,
            "VOLKSWAGEN"
        );
        assert_eq!(vehicle_for_vin("X7LLSRB1HAH123456").brand.code, "RENAULT");
    }

    #[test]
    fn derived_vins_are_valid() {
        for vin in sample_vins(500) {
            assert!(is_valid_vin(&vin), "invalid derived VIN {vin}");
            assert!(
                !vin.ends_with("00000"),
                "derived VIN {vin} is a not-found marker"
            );
            assert!(
                BRANDS.iter().any(|brand| vin.starts_with(brand.wmi)),
                "unknown WMI in {vin}"
            );
        }
    }

    #[test]
    fn derived_plates_are_valid() {
        for vin in sample_vins(500) {
            let plate = derive_plate(&vin);
            let characters: Vec<char> = plate.chars().collect();
            let is_letter = |c: &char| PLATE_LETTERS.contains(*c);

            assert!(matches!(characters.len(), 8 | 9), "bad length of {plate}");
            assert!(is_letter(&characters[0]), "bad first letter in {plate}");
            assert!(
                characters[1..4].iter().all(char::is_ascii_digit),
                "bad number in {plate}"
            );
            assert!(
                characters[4..6].iter().all(is_letter),
                "bad letters in {plate}"
            );
            assert!(
                characters[6..].iter().all(char::is_ascii_digit),
                "bad region in {plate}"
            );
            let number: String = characters[1..4].iter().collect();
            assert_ne!(number, "000", "derived plate {plate} is a not-found marker");
        }
    }

    #[test]
    fn plate_record_matches_derived_vin() {
        let plate = "А123ВС77";
        let vehicle = vehicle_for_plate(plate);
        let by_vin = vehicle_for_vin(&vehicle.vin);

        assert_eq!(vehicle.plate, plate);
        assert_eq!(vehicle.vin, derive_vin(plate));
        assert_eq!(vehicle.brand, by_vin.brand);
        assert_eq!(vehicle.model, by_vin.model);
        assert_eq!(vehicle.year, by_vin.year);
    }

    #[test]
    fn records_stay_in_ranges() {
        let mut categories = std::collections::BTreeSet::new();
        for vin in sample_vins(500) {
            let vehicle = vehicle_for_vin(&vin);
            categories.insert(vehicle.category);

            assert!((1995..=2025).contains(&vehicle.year), "year of {vin}");
            assert!((70..=250).contains(&vehicle.power.hp), "power of {vin}");
            assert_eq!(vehicle.power.kw, horsepower_to_kilowatts(vehicle.power.hp));
            assert!(
                (1440..=3800).contains(&vehicle.engine_volume),
                "engine of {vin}"
            );
            assert!(vehicle.osago.len() <= 3, "osago count of {vin}");
        }
        assert!(categories.contains("B"));
        assert!(categories.contains("C"));
        assert!(categories.contains("D"));
    }

    #[test]
    fn osago_policies_are_consecutive_years() {
        let today = NaiveDate::from_ymd_opt(2025, 6, 15).unwrap();
        let policies = (0..100)
            .map(|index| osago_policies(&Seed::new(&format!("seed {index}")), 1995, today))
            .find(|policies| policies.len() == 3)
            .expect("some seed gives three policies");

        assert_eq!(policies[0].status, "expired");
        assert_eq!(policies[1].status, "expired");
        assert_eq!(policies[2].status, "active");
        for policy in &policies {
            let (series, number) = policy.policy.split_once(' ').unwrap();
            assert_eq!(series.chars().count(), 3, "series of {}", policy.policy);
            assert_eq!(number.len(), 10, "number of {}", policy.policy);
            assert!(
                number.chars().all(|c| c.is_ascii_digit()),
                "number of {}",
                policy.policy
            );
        }

        let newest_from = NaiveDate::parse_from_str(&policies[2].date_from, "%Y-%m-%d").unwrap();
        let newest_to = NaiveDate::parse_from_str(&policies[2].date_to, "%Y-%m-%d").unwrap();
        assert!(newest_from <= today);
        assert_eq!(newest_to, newest_from + Months::new(12) - Days::new(1));
        assert_eq!(
            policies[1].date_to,
            (newest_from - Days::new(1)).format("%Y-%m-%d").to_string()
        );
    }

    #[test]
    fn osago_skips_years_before_model_year() {
        let today = NaiveDate::from_ymd_opt(2025, 6, 15).unwrap();
        for index in 0..100 {
            let policies = osago_policies(&Seed::new(&format!("seed {index}")), 2025, today);
            for policy in &policies {
                assert!(
                    policy.date_from.as_str() >= "2025-01-01",
                    "policy {policy:?}"
                );
            }
        }
    }
}
