"""Fixed reference data of the simulated shop: Spanish names, cities, stores and the product catalogue.

The catalogue and the stores do not depend on the seed: every simulation is of the same shop, only
its customers and their behaviour change.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date

import numpy as np

FIRST_NAMES = (
    "Lucía", "Hugo", "Martina", "Mateo", "Sofía", "Leo", "María", "Pablo", "Julia", "Álvaro", "Paula",
    "Daniel", "Valeria", "Adrián", "Emma", "Manuel", "Noa", "Jorge", "José", "Ana", "Antonio", "Carmen",
    "Francisco", "Isabel", "Javier", "Laura", "David", "Cristina", "Jesús", "Marta", "Carlos", "Elena",
    "Miguel", "Raquel", "Alejandro", "Inés", "Rubén", "Rocío", "Sergio", "Ángela", "Raúl", "Begoña",
    "Iñigo", "Nuria", "Tomás", "Mónica", "Óscar", "Beatriz", "Andrés", "Verónica", "Fernando", "Pilar",
    "Joaquín", "Lorena", "Ramón", "Susana", "Víctor", "Irene", "Germán", "Nerea",
)
LAST_NAMES = (
    "García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez",
    "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Alonso",
    "Gutiérrez", "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos", "Gil", "Ramírez", "Serrano",
    "Blanco", "Molina", "Morales", "Suárez", "Ortega", "Delgado", "Castro", "Ortiz", "Rubio", "Marín",
    "Sanz", "Núñez", "Iglesias", "Medina", "Garrido", "Cortés", "Castillo", "Santos", "Lozano",
    "Guerrero", "Cano", "Prieto", "Méndez", "Cruz", "Calvo", "Gallego", "Vidal", "León", "Márquez",
    "Herrera", "Peña", "Flores", "Cabrera", "Campos", "Vega", "Fuentes", "Carrasco", "Díez", "Caballero",
    "Reyes", "Nieto", "Aguilar", "Pascual", "Santana", "Herrero", "Lorenzo", "Montero", "Hidalgo",
    "Ibáñez", "Ferrer", "Durán", "Benítez", "Mora", "Vicente", "Vargas", "Arias", "Carmona", "Crespo",
    "Román", "Pastor", "Soto", "Sáez", "Velasco", "Moya", "Soler", "Parra", "Esteban", "Bravo",
)
EMAIL_DOMAINS = ("gmail.com", "hotmail.com", "yahoo.es", "outlook.es", "telefonica.net", "icloud.com",
                 "gmx.es")
EMAIL_DOMAIN_WEIGHTS = (0.45, 0.2, 0.08, 0.1, 0.05, 0.07, 0.05)
PLACEHOLDER_EMAIL = "noemail@noemail.com"
PLACEHOLDER_PHONES = ("000000000", "n/a")


@dataclass(frozen=True)
class Store:
    """One physical store; customers live in postal codes of its city."""

    store_id: str
    store_name: str
    city: str
    postal_low: int
    postal_high: int
    opened_on: date
    weight: float


STORES = (
    Store("S01", "Trébol Madrid Centro", "Madrid", 28001, 28015, date(2009, 3, 14), 0.17),
    Store("S02", "Trébol Madrid Chamartín", "Madrid", 28016, 28055, date(2014, 10, 2), 0.13),
    Store("S03", "Trébol Barcelona Eixample", "Barcelona", 8001, 8042, date(2011, 5, 20), 0.16),
    Store("S04", "Trébol València Russafa", "Valencia", 46001, 46026, date(2012, 9, 8), 0.1),
    Store("S05", "Trébol Sevilla Triana", "Sevilla", 41001, 41020, date(2013, 4, 26), 0.09),
    Store("S06", "Trébol Zaragoza", "Zaragoza", 50001, 50018, date(2015, 11, 12), 0.07),
    Store("S07", "Trébol Málaga Centro", "Málaga", 29001, 29018, date(2016, 6, 1), 0.08),
    Store("S08", "Trébol Bilbao Abando", "Bilbao", 48001, 48015, date(2017, 2, 17), 0.07),
    Store("S09", "Trébol Murcia", "Murcia", 30001, 30012, date(2018, 3, 9), 0.06),
    Store("S10", "Trébol Valladolid", "Valladolid", 47001, 47016, date(2019, 10, 25), 0.07),
)

# category, (low, high) base price in euros, product bases
_CATEGORIES = (
    ("Alimentación", (2.0, 16.0), ("Aceite de oliva virgen extra", "Arroz bomba", "Café molido natural",
                                   "Jamón serrano loncheado", "Queso manchego curado", "Turrón de Jijona",
                                   "Chocolate negro", "Miel de azahar")),
    ("Bebidas", (1.0, 22.0), ("Vino tinto Rioja crianza", "Cava brut nature", "Agua mineral",
                              "Zumo de naranja", "Cerveza artesana", "Vermut rojo", "Sidra natural")),
    ("Droguería", (1.5, 12.0), ("Detergente líquido", "Suavizante", "Lavavajillas", "Limpiador multiusos",
                                "Papel higiénico", "Bayetas de microfibra")),
    ("Perfumería", (3.0, 55.0), ("Colonia fresca", "Champú reparador", "Gel de baño", "Crema hidratante",
                                 "Desodorante", "Protector solar")),
    ("Hogar", (6.0, 80.0), ("Sartén antiadherente", "Juego de toallas", "Vajilla de gres", "Lámpara de mesa",
                            "Cojín decorativo", "Olla a presión", "Manta polar")),
    ("Textil", (8.0, 65.0), ("Camiseta básica", "Pantalón vaquero", "Jersey de punto", "Pijama de algodón",
                             "Chaqueta cortavientos", "Calcetines")),
    ("Calzado", (15.0, 110.0), ("Zapatillas deportivas", "Botas de piel", "Sandalias", "Mocasines",
                                "Alpargatas")),
    ("Electrónica", (10.0, 260.0), ("Auriculares inalámbricos", "Altavoz bluetooth", "Cargador rápido",
                                    "Reloj inteligente", "Ratón inalámbrico", "Cámara deportiva")),
    ("Juguetes", (6.0, 75.0), ("Puzle 1000 piezas", "Juego de mesa", "Peluche", "Bloques de construcción",
                               "Muñeca articulada", "Coche teledirigido")),
    ("Deportes", (5.0, 140.0), ("Esterilla de yoga", "Balón de fútbol", "Pala de pádel", "Mancuernas",
                                "Mochila de montaña", "Botella térmica")),
    ("Papelería", (1.0, 25.0), ("Cuaderno A4", "Bolígrafos", "Agenda anual", "Rotuladores", "Archivador",
                                "Estuche escolar")),
    ("Mascotas", (2.0, 60.0), ("Pienso para perro", "Arena para gatos", "Snacks dentales",
                               "Cama para mascota", "Correa extensible")),
)
_VARIANTS = (("", 1.0), (" pack ahorro", 1.8), (" edición especial", 1.35))
_ENDINGS = np.array([99, 95, 49, 50, 0], dtype=np.int64)


@dataclass(frozen=True)
class Catalogue:
    """The products, as parallel arrays (index = product number - 1)."""

    product_id: list[str]
    product_name: list[str]
    category: list[str]
    price: np.ndarray  # cents
    cost: np.ndarray  # cents

    @property
    def size(self) -> int:
        return len(self.product_id)


def make_catalogue() -> Catalogue:
    """The shop's ~200 products in 12 categories; a few are loss leaders (cost above price)."""
    rng = np.random.default_rng(20260630)
    names: list[str] = []
    categories: list[str] = []
    euros: list[float] = []
    for category, (low, high), bases in _CATEGORIES:
        for base in bases:
            base_price = float(np.exp(rng.uniform(np.log(low), np.log(high))))
            for suffix, factor in _VARIANTS:
                names.append(base + suffix)
                categories.append(category)
                euros.append(base_price * factor)
    whole = np.maximum(np.floor(np.array(euros)), 0).astype(np.int64)
    price = whole * 100 + _ENDINGS[rng.integers(0, len(_ENDINGS), len(names))]
    price = np.maximum(price, 99)
    margin = rng.uniform(0.4, 0.75, len(names))
    loss_leaders = rng.choice(np.flatnonzero(np.isin(categories, ("Alimentación", "Bebidas"))), 4,
                              replace=False)
    margin[loss_leaders] = rng.uniform(1.05, 1.25, len(loss_leaders))
    cost = np.round(price * margin).astype(np.int64)
    ids = [f"P{i + 1:04d}" for i in range(len(names))]
    return Catalogue(ids, names, categories, price, cost)


def ascii_fold(text: str) -> str:
    """``"Muñoz Ibáñez"`` → ``"Munoz Ibanez"``: the accents a legacy system drops."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def format_phone(national: str, style: int) -> str:
    """A Spanish mobile number (9 digits) written in one of the ways people and systems write it."""
    a, b, c = national[:3], national[3:6], national[6:]
    match style:
        case 0:
            return f"+34 {a} {b} {c}"
        case 1:
            return national
        case 2:
            return "0034" + national
        case 3:
            return f"{a}-{national[3:5]}-{national[5:7]}-{national[7:]}"
        case 4:
            return "+34" + national
        case _:
            return f"{a} {national[3:5]} {national[5:7]} {national[7:]}"


PHONE_STYLES = 6
