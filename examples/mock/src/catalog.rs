//! Fixed mock catalog: brands with models, colors, insurers, policy series and plate regions.

/// Region codes that derived plates use: Moscow, the Moscow region, Saint Petersburg and
/// a few other large regions.
pub const PLATE_REGIONS: [&str; 16] = [
    "77", "97", "99", "177", "197", "199", "777", "50", "150", "750", "78", "178", "16", "66",
    "54", "23",
];

/// Body color names in Russian.
pub const COLORS: [&str; 10] = [
    "Белый",
    "Чёрный",
    "Серебристый",
    "Серый",
    "Синий",
    "Красный",
    "Зелёный",
    "Бежевый",
    "Коричневый",
    "Жёлтый",
];

/// OSAGO insurers by their legal names.
pub const INSURERS: [&str; 8] = [
    "АО «СОГАЗ»",
    "СПАО «Ингосстрах»",
    "АО «АльфаСтрахование»",
    "ПАО СК «Росгосстрах»",
    "САО «РЕСО-Гарантия»",
    "САО «ВСК»",
    "АО «Т-Страхование»",
    "ООО «Зетта Страхование»",
];

/// Series letters of OSAGO policy numbers.
pub const POLICY_SERIES: [&str; 6] = ["ХХХ", "ТТТ", "ААС", "ААВ", "МММ", "ККК"];

/// A vehicle model with its AVINFO category and the years it was sold, all within 1995..=2025.
pub struct Model {
    pub name: &'static str,
    pub category: &'static str,
    pub first_year: u64,
    pub last_year: u64,
}

/// A brand with its AVINFO code, display name and world manufacturer identifier (first three
/// VIN characters), which lets a VIN lookup keep the brand that the VIN names.
pub struct Brand {
    pub code: &'static str,
    pub name: &'static str,
    pub wmi: &'static str,
    pub models: &'static [Model],
}

const fn model(name: &'static str, category: &'static str, years: (u64, u64)) -> Model {
    Model {
        name,
        category,
        first_year: years.0,
        last_year: years.1,
    }
}

/// Brands and models of the mock. Most models are cars (category `B`). A few are trucks (`C`),
/// buses (`D`) or motorcycles (`A`), so the connector's category mapping gets more than one code.
pub const BRANDS: [Brand; 8] = [
    Brand {
        code: "VAZ",
        name: "LADA (ВАЗ)",
        wmi: "XTA",
        models: &[
            model("2107", "B", (1995, 2012)),
            model("2109", "B", (1995, 2004)),
            model("2110", "B", (1996, 2007)),
            model("Priora", "B", (2007, 2018)),
            model("Kalina", "B", (2004, 2018)),
            model("Granta", "B", (2011, 2025)),
            model("Vesta", "B", (2015, 2025)),
            model("Largus", "B", (2012, 2025)),
        ],
    },
    Brand {
        code: "KIA",
        name: "KIA",
        wmi: "KNA",
        models: &[
            model("Rio", "B", (2005, 2025)),
            model("Ceed", "B", (2007, 2025)),
            model("Cerato", "B", (2004, 2025)),
            model("Sportage", "B", (1995, 2025)),
            model("Sorento", "B", (2002, 2025)),
            model("Granbird", "D", (1995, 2020)),
        ],
    },
    Brand {
        code: "HYUNDAI",
        name: "HYUNDAI",
        wmi: "Z94",
        models: &[
            model("Solaris", "B", (2010, 2025)),
            model("Creta", "B", (2016, 2025)),
            model("Tucson", "B", (2004, 2025)),
            model("Santa Fe", "B", (2000, 2025)),
            model("HD78", "C", (2004, 2025)),
            model("County", "D", (1998, 2025)),
        ],
    },
    Brand {
        code: "TOYOTA",
        name: "TOYOTA",
        wmi: "JTD",
        models: &[
            model("Camry", "B", (1995, 2025)),
            model("Corolla", "B", (1995, 2025)),
            model("RAV4", "B", (1995, 2025)),
            model("Land Cruiser 200", "B", (2007, 2021)),
            model("Hilux", "B", (1997, 2025)),
            model("Coaster", "D", (1995, 2025)),
        ],
    },
    Brand {
        code: "VOLKSWAGEN",
        name: "VOLKSWAGEN",
        wmi: "WVW",
        models: &[
            model("Polo", "B", (1995, 2025)),
            model("Passat", "B", (1995, 2025)),
            model("Tiguan", "B", (2007, 2025)),
            model("Touareg", "B", (2002, 2025)),
            model("Crafter", "B", (2006, 2025)),
        ],
    },
    Brand {
        code: "RENAULT",
        name: "RENAULT",
        wmi: "X7L",
        models: &[
            model("Logan", "B", (2005, 2022)),
            model("Sandero", "B", (2009, 2022)),
            model("Duster", "B", (2011, 2025)),
            model("Kaptur", "B", (2016, 2022)),
            model("Premium", "C", (1996, 2013)),
        ],
    },
    Brand {
        code: "SKODA",
        name: "SKODA",
        wmi: "TMB",
        models: &[
            model("Octavia", "B", (1996, 2025)),
            model("Fabia", "B", (1999, 2025)),
            model("Rapid", "B", (2012, 2022)),
            model("Kodiaq", "B", (2016, 2025)),
        ],
    },
    Brand {
        code: "BMW",
        name: "BMW",
        wmi: "WBA",
        models: &[
            model("320i", "B", (1995, 2025)),
            model("520d", "B", (1996, 2025)),
            model("X5", "B", (1999, 2025)),
            model("R 1250 GS", "A", (2018, 2025)),
        ],
    },
];
