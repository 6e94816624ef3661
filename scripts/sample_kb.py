"""The invented knowledge base behind the sample collection (used by `make_sample.py`).

Seven kinds of entity of an imaginary world. Each attribute has wordings for passages
(`values[i][0]`, `passages`, `details`) and different wordings for queries (`values[i][1]`,
`asks` for "what is X's attribute", `finds` for "which X has this attribute"), so queries
paraphrase their passages instead of copying them. All text here was written for lead-ray and
is released under CC0-1.0.

Template fields: {name} the entity, {v}/{q} the value's passage/query wording, entity fillers
{region} {home} {year} {river} {mountain} {he} {his} {him} {child}, and per-fact fillers {year2}
{year3} {n} (a count, often written {n}0 or {n}00) {k} (a small number) {age} {cm} {person}
{person2} {town} {season}.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attr:
    values: tuple[tuple[str, str], ...] = ()  # (passage wording, query wording); records may own
    passages: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    asks: tuple[str, ...] = ()  # entity named, attribute asked
    finds: tuple[str, ...] = ()  # attribute described, entity asked


@dataclass(frozen=True)
class Kind:
    key: str
    count: int
    attrs: dict[str, Attr]
    names: tuple[str, ...] = ("{word}",)  # name patterns: {word} {surname} {surname2} {town} {base}
    bases: tuple[str, ...] = ()
    records: tuple[dict, ...] = ()  # hand-matched values (and "base"/"name") per entity
    details: tuple[str, ...] = ()  # neutral sentences any passage of this kind may borrow
    overviews: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (template, attributes it states)
    lower: bool = False  # common nouns ("the ash vole") rather than proper names


# ----------------------------------------------------------------------------- towns

TOWN = Kind(
    "town",
    20,
    {
        "founded": Attr(
            values=(
                (
                    "salt traders who needed a resting place on the road to the coast",
                    "salt merchants",
                ),
                (
                    "shepherds driven down from the high pastures by a harsh winter",
                    "herders escaping the cold",
                ),
                ("a small order of monks expelled from the old capital", "exiled clergy"),
                ("fishing families who crossed over from the outer islands", "island fishermen"),
                (
                    "prospectors who had heard rumours of silver in the hills",
                    "people hunting for precious metal",
                ),
                (
                    "veterans of a long war who were given land instead of wages",
                    "former soldiers paid with farmland",
                ),
                ("a guild of stonemasons working on a cathedral nearby", "church builders"),
                (
                    "families fleeing the great flood that swallowed the lowland farms",
                    "refugees from a deluge",
                ),
                ("timber cutters who floated logs down the {river}", "woodcutters"),
                ("a wealthy wine merchant and his household", "a rich vintner and his family"),
                ("horse breeders looking for open grazing land", "people who raised horses"),
                (
                    "pilgrims who stopped at a spring they believed to be holy",
                    "religious travellers at a sacred water source",
                ),
                ("charcoal burners from the forest villages", "people who made charcoal"),
                ("a band of runaway apprentices from the city guilds", "young workers who escaped"),
                (
                    "ferrymen who carried travellers across the {river}",
                    "boatmen running a crossing",
                ),
                ("beekeepers drawn by the heather on the surrounding moors", "honey producers"),
            ),
            passages=(
                "{name} was founded in {year} by {v}.",
                "The first settlers of {name} were {v}, who arrived in {year}.",
                "Town records trace the beginnings of {name} to {year}, when {v} built the first "
                "houses there.",
            ),
            details=(
                "For its first hundred years the place was little more than a few dozen cottages "
                "around a well.",
                "A wooden palisade protected the early settlement until stone walls were raised in "
                "{year2}.",
                "The settlement received a market charter from the lords of {region} in {year2}.",
                "The oldest surviving house, a narrow timber building near the square, is thought "
                "to "
                "date from that first generation.",
            ),
            asks=(
                "who founded {name} and when",
                "when was {name} first settled, and by whom?",
                "origins of the town of {name}",
                "what kind of people started the town of {name}",
                "history of how {name} began",
            ),
            finds=("which town was started by {q}?", "town established in {year} by {q}"),
        ),
        "economy": Attr(
            values=(
                (
                    "glassblowing, and its workshops send lanterns and bottles all over {region}",
                    "making glass",
                ),
                (
                    "cheese making; cellars beneath the old town age hard cheeses for up to three "
                    "years",
                    "dairy products",
                ),
                (
                    "shipbuilding, with several yards turning out fishing boats and river barges",
                    "constructing vessels",
                ),
                ("copper mining in the hills to the east", "digging metal ore"),
                ("paper milling, powered by waterwheels along the {river}", "producing paper"),
                ("clockmaking, a trade brought by immigrant craftsmen", "making timepieces"),
                ("the weaving of heavy woollen cloth", "textile manufacturing"),
                ("pressing olives into oil", "olive oil production"),
                ("brewing dark beer", "making ale"),
                ("growing tulips and other flower bulbs for export", "flower farming"),
                (
                    "quarrying a pale limestone used in buildings across {region}",
                    "cutting building stone",
                ),
                ("tanning hides and making saddles", "leather goods"),
                ("boiling brine from salt springs", "harvesting salt"),
                ("printing books and almanacs", "publishing"),
                ("growing apples and pressing cider", "orchards and fruit drinks"),
                ("making violins and other string instruments", "building musical instruments"),
            ),
            passages=(
                "The economy of {name} rests mainly on {v}.",
                "Most households in {name} make their living from {v}.",
                "For more than a century, {name} has prospered from {v}.",
            ),
            details=(
                "Roughly {n}0 people are employed in the trade, about a third of the working "
                "population.",
                "A large share of the output is carried by cart to the markets of {town}.",
                "The local guild still sets prices and trains apprentices.",
                "The trade suffered badly during the dry years around {year2} but recovered "
                "within a "
                "decade.",
                "Several family firms have been in business for more than five generations.",
            ),
            asks=(
                "what do people in {name} do for work",
                "main industry of {name}",
                "how does {name} make its money?",
                "what is the local economy of {name} based on",
            ),
            finds=("which town's economy depends on {q}?", "town in {region} known for {q}"),
        ),
        "festival": Attr(
            values=(
                (
                    "the Night of Lanterns, when hundreds of paper lights are floated down the "
                    "river",
                    "setting lamps adrift on the water",
                ),
                (
                    "a cheese-rolling race down the steep hill behind the church",
                    "chasing food down a slope",
                ),
                (
                    "the Feast of the First Catch, when the priest blesses the fishing fleet",
                    "blessing the boats",
                ),
                (
                    "a week-long horse fair with races on the common",
                    "a market and races for horses",
                ),
                (
                    "the Burning of the Straw Giant to mark the end of winter",
                    "setting fire to a huge figure",
                ),
                ("a midsummer contest for fiddlers", "a violin competition"),
                (
                    "Bell Day, when every bell in town is rung at noon",
                    "ringing all the church bells",
                ),
                (
                    "a harvest market where the heaviest pumpkin wins a silver cup",
                    "a giant vegetable contest",
                ),
                (
                    "the Silent Walk, a night procession in memory of a plague",
                    "a quiet march remembering an epidemic",
                ),
                ("a kite festival on the windy hills outside the walls", "flying kites"),
                ("the Masked Ball of the Guilds, held in the old market hall", "a costume dance"),
                ("a mud race across the tidal flats", "running through mud"),
                (
                    "the Apple Crowning, when two children are crowned king and queen of the "
                    "orchards",
                    "an orchard royalty ceremony",
                ),
                ("a snow sculpture competition on the frozen lake", "carving figures from ice"),
                (
                    "the Day of Open Doors, when every house offers bread to strangers",
                    "sharing loaves with visitors",
                ),
                ("a boat parade by torchlight", "vessels lit with flames"),
            ),
            passages=(
                "Every {season}, {name} holds {v}.",
                "The biggest event of the year in {name} is {v}, which takes place each {season}.",
                "{name} is famous in {region} for {v}, held every {season}.",
            ),
            details=(
                "Visitors from {town} and further away fill the inns for several days.",
                "The custom is said to go back to {year2}.",
                "The town council pays for the celebration out of market taxes.",
                "Children spend weeks preparing for it at school.",
                "The event was banned for a few years during a war but was revived afterwards.",
            ),
            asks=(
                "what annual celebration takes place in {name}",
                "{name} yearly festival",
                "what event do the people of {name} celebrate each year?",
                "traditional festivities in {name}",
            ),
            finds=(
                "which town has a yearly tradition of {q}?",
                "town festival in the {season} involving {q}",
            ),
        ),
        "location": Attr(
            values=(
                ("on a rocky headland high above the sea", "on a cliff by the ocean"),
                ("at the point where the {river} joins a larger stream", "where two rivers meet"),
                ("in a narrow gorge cut by the {river}", "in a deep canyon"),
                (
                    "on a flat island in the middle of a lake",
                    "on an island surrounded by fresh water",
                ),
                ("at the foot of Mount {mountain}", "below a big peak"),
                ("among marshes that flood every spring", "in wetlands"),
                ("on a high plateau with almost no trees", "on a bare tableland"),
                ("at the mouth of the {river}, facing a wide bay", "where a river reaches the sea"),
                ("on both sides of a steep pass through the mountains", "in a mountain pass"),
                ("in a sheltered valley surrounded by vineyards", "in a valley full of grapevines"),
                ("on the edge of a vast pine forest", "next to a huge woodland"),
                ("on seven low hills above the {river}", "across several hills"),
            ),
            passages=(
                "{name} lies {v}, in {region}.",
                "The town of {name} is built {v}.",
                "Situated {v}, {name} is one of the oldest towns of {region}.",
            ),
            details=(
                "The nearest larger town, {town}, is about {k} kilometres away.",
                "Fog often hangs over the streets in the cold months.",
                "The old road to {town} was only paved in {year2}.",
                "Summers there are short and cool, and snow can fall as late as May.",
                "The surrounding land is too poor for grain, so most food is brought in from "
                "outside.",
            ),
            asks=(
                "where is {name} located",
                "geography of {name}",
                "what kind of landscape surrounds {name}?",
                "where would I find the town of {name}",
            ),
            finds=("which town in {region} is {q}?", "town located {q}"),
        ),
        "landmark": Attr(
            values=(
                ("a bell tower that leans noticeably to the north", "a tilted clock tower"),
                (
                    "a covered wooden bridge decorated with painted panels",
                    "a roofed bridge with pictures",
                ),
                (
                    "a round stone observatory built by a local astronomer",
                    "an old building for watching the stars",
                ),
                (
                    "a windmill that has been grinding flour since {year2}",
                    "an old wind-driven mill",
                ),
                ("the ruins of a hilltop castle destroyed by fire", "a burnt fortress on a hill"),
                ("a fountain carved in the shape of a giant fish", "a fish-shaped water feature"),
                ("a library housed in a former prison", "books kept in an old jail"),
                ("a market hall with a roof of green copper", "a marketplace with a metal roof"),
                ("a lighthouse painted in red and white stripes", "a striped beacon"),
                ("an underground chapel dug into the chalk", "a church below ground"),
                (
                    "a wall of carved faces, one for each family in the town",
                    "stone portraits of local families",
                ),
                (
                    "a garden full of plants from the southern islands",
                    "a collection of exotic flowers and trees",
                ),
                ("a stone arch that marks the old city gate", "an ancient gateway"),
                (
                    "a clock with wooden figures that dance on the hour",
                    "a timepiece with moving puppets",
                ),
            ),
            passages=(
                "The best-known sight in {name} is {v}.",
                "Visitors to {name} usually come to see {v}.",
                "{name}'s most famous landmark is {v}.",
            ),
            details=(
                "It appears on the town seal and on most postcards sold in the square.",
                "Guided tours run every day except in the winter months.",
                "It was restored at great cost in {year2} after years of neglect.",
                "Local legend says that the town will fall if it is ever taken down.",
                "It was designed by {person}, a builder from {town}.",
            ),
            asks=(
                "what is the main attraction in {name}",
                "famous sights to visit in {name}",
                "what monument is {name} known for?",
                "what should tourists see when they go to {name}",
            ),
            finds=("which town has {q}?", "town where you can visit {q}"),
        ),
    },
    details=(
        "The town hall on the main square dates from {year3}.",
        "Its people are known in {region} for their dry sense of humour.",
        "Around {n}00 people live there today.",
    ),
    overviews=(
        (
            "{name} was founded by {v_founded} in {year}, and today the town is best known for "
            "{v_economy}.",
            ("founded", "economy"),
        ),
        (
            "Travellers who reach {name}, a town {v_location}, rarely leave without seeing "
            "{v_landmark}.",
            ("location", "landmark"),
        ),
    ),
)


# ----------------------------------------------------------------------------- creatures

CREATURE = Kind(
    "creature",
    20,
    {
        "habitat": Attr(
            values=(
                ("the reed beds that line slow, muddy rivers", "marshy riverbanks"),
                ("steep rocky slopes above the tree line", "high mountain cliffs"),
                ("the damp floor of old beech forests", "shady broadleaf woods"),
                ("dry thorn scrub where rain falls only a few times a year", "arid bushland"),
                ("coastal salt marshes", "wetlands by the sea"),
                ("caves and abandoned mine shafts", "underground tunnels"),
                ("meadows that flood every spring", "seasonally wet grassland"),
                ("the hedgerows between farm fields", "the edges of farmland"),
                ("the crowns of tall pine trees", "the tops of conifers"),
                ("sand dunes along the southern shore", "beach dunes"),
                ("the gardens and rooftops of towns", "urban areas"),
                ("peat bogs on the high moors", "upland swamps"),
                ("the banks of clear, fast mountain streams", "cold rushing brooks"),
                ("the edges of deep, cold lakes", "the shores of large freshwater lakes"),
            ),
            passages=(
                "The {name} is found in {v} across {region}.",
                "In {region}, the {name} is mostly seen in {v}.",
                "The natural home of the {name} is {v}.",
            ),
            details=(
                "It rarely strays far from the place where it was born.",
                "Naturalists first recorded it there in {year2}.",
                "It shares this home with several larger predators.",
                "It disappears quickly from places where the land is drained or ploughed.",
            ),
            asks=(
                "where does the {name} live?",
                "habitat of the {name}",
                "what kind of place is the {name} found in",
                "where can you see a {name} in the wild",
            ),
            finds=("which animal lives in {q}?", "creature native to {q} in {region}"),
        ),
        "diet": Attr(
            values=(
                ("beetles and other small insects picked from tree bark", "bugs"),
                ("the seeds of grasses and thistles", "grain and plant seeds"),
                ("fallen fruit and berries", "fruit"),
                ("snails, whose shells it cracks against stones", "molluscs"),
                ("mice and young rats", "small rodents"),
                ("nectar from flowers that open at night", "sweet flower juice"),
                ("roots and bulbs that it digs out of the ground", "underground plant parts"),
                ("the carcasses of larger animals", "dead animals"),
                ("frogs and tadpoles", "amphibians"),
                ("moss and lichen scraped from rocks", "mosses"),
                ("the eggs of other birds", "eggs stolen from nests"),
                ("small fish caught in shallow water", "fish"),
                ("earthworms pulled from wet soil", "worms"),
                ("grasshoppers, which it hunts in the heat of the day", "locust-like insects"),
            ),
            passages=(
                "The {name} feeds mainly on {v}.",
                "The diet of the {name} consists largely of {v}.",
                "Most of what the {name} eats is {v}.",
            ),
            details=(
                "In hard winters it will eat almost anything it can find.",
                "Naturalists study its droppings to learn what it has eaten.",
                "Young animals are fed by both parents until they can forage alone.",
                "Farmers in {region} once believed it ruined their crops, which is not true.",
            ),
            asks=(
                "what does the {name} eat?",
                "{name} diet",
                "food of the {name}",
                "what is the main food source of the {name}",
            ),
            finds=("which animal feeds on {q}?", "creature that lives on {q}"),
        ),
        "looks": Attr(
            values=(
                ("a rust-red back and a pale cream belly", "reddish upperparts"),
                ("a long tail marked with black rings", "a striped tail"),
                ("ears almost as long as its body", "enormous ears"),
                ("glossy green skin that shimmers blue in sunlight", "iridescent colouring"),
                ("a bright yellow patch on its throat", "a yellow neck marking"),
                ("a stiff white crest on top of its head", "a pale tuft on the crown"),
                ("large orange eyes", "big amber eyes"),
                (
                    "a coat that turns from brown to white in winter",
                    "colours that change with the seasons",
                ),
                ("spots arranged in neat rows along its sides", "dotted flanks"),
                ("an unusually flat head and a very wide mouth", "a flattened skull"),
                (
                    "almost black colouring with a silver stripe down the back",
                    "a dark body with a light line",
                ),
                ("legs far longer than those of its relatives", "long limbs"),
            ),
            passages=(
                "The {name} is about {cm} centimetres long and has {v}.",
                "You can recognise the {name} by {v}; adults reach roughly {cm} centimetres.",
                "Adults of the {name} grow to around {cm} centimetres and have {v}.",
            ),
            details=(
                "Males and females look alike, although males are slightly larger.",
                "Young animals are duller and lack the adult markings.",
                "The colours fade quickly after death, which confused early naturalists.",
                "It was first described by the naturalist {person} in {year2}.",
            ),
            asks=(
                "what does the {name} look like",
                "how to identify a {name}",
                "size and colouring of the {name}",
                "appearance of the {name}",
            ),
            finds=("animal with {q}", "which creature has {q}?"),
        ),
        "behaviour": Attr(
            values=(
                ("is active only at night and spends the day hidden", "comes out only after dark"),
                (
                    "gathers in large groups each autumn and travels south",
                    "moves to warmer regions for the winter",
                ),
                ("sleeps through the winter in deep burrows", "hibernates underground"),
                ("lives in family groups of up to twenty animals", "lives in colonies"),
                (
                    "defends its territory fiercely and chases away intruders",
                    "guards its area aggressively",
                ),
                ("hides spare food in dozens of secret stores", "stores supplies for later"),
                ("calls loudly at dawn from the highest perch it can find", "is noisy at sunrise"),
                ("plays dead when it is threatened", "pretends to be dead"),
                ("builds elaborate shelters from woven grass", "weaves itself a home"),
                (
                    "follows herds of cattle to catch the insects they disturb",
                    "trails cows and sheep",
                ),
                ("basks on warm stones for hours every morning", "sunbathes"),
                (
                    "mates for life, and pairs greet each other with a short dance",
                    "keeps one partner forever",
                ),
            ),
            passages=(
                "The {name} {v}.",
                "Naturalists note that the {name} {v}.",
                "Unlike most of its relatives, the {name} {v}.",
            ),
            details=(
                "This makes it hard to study, and much about its life is still unknown.",
                "Farmers in {region} tell many stories about it.",
                "It is most easily observed in the weeks after the first frosts.",
                "The young leave their parents when they are about {k} weeks old.",
            ),
            asks=(
                "how does the {name} behave",
                "habits of the {name}",
                "what is unusual about the way the {name} lives",
                "{name} behaviour",
            ),
            finds=("which animal {q}?", "creature in {region} that {q}"),
        ),
        "status": Attr(
            values=(
                (
                    "is now rare because many of the wetlands it depends on were drained",
                    "threatened because its marshes disappeared",
                ),
                (
                    "is common and even considered a pest by some farmers",
                    "so numerous that farmers see it as a nuisance",
                ),
                (
                    "was hunted almost to extinction for its skin but has recovered under "
                    "protection",
                    "back from near extinction after hunting",
                ),
                (
                    "is found in only a few valleys and is strictly protected by law",
                    "legally protected and very localised",
                ),
                (
                    "has declined sharply since a disease reached {region} in {year2}",
                    "declining because of an illness",
                ),
                (
                    "is thriving because it has adapted to living near people",
                    "doing well thanks to humans",
                ),
                (
                    "has not been seen for several years and may already be extinct",
                    "possibly gone for good",
                ),
                (
                    "is slowly increasing as old forests are replanted",
                    "recovering thanks to reforestation",
                ),
            ),
            passages=(
                "The {name} can live for up to {k} years. The species {v}.",
                "Conservation reports say that the {name} {v}. Individuals live as long as {k} "
                "years.",
            ),
            details=(
                "A breeding programme was started in {year2}.",
                "Volunteers count the population every spring.",
                "Its numbers are watched closely by the naturalists' society of {town}.",
            ),
            asks=(
                "is the {name} endangered?",
                "conservation status of the {name}",
                "how long does the {name} live and how many are left",
                "lifespan and population of the {name}",
            ),
            finds=("which animal is {q}?",),
        ),
    },
    bases=(
        "copper-backed finch",
        "ash-throated warbler",
        "long-eared hare",
        "dusky bat",
        "banded skink",
        "silver-tailed dormouse",
        "red-crowned plover",
        "hooded owl",
        "stub-tailed shrew",
        "velvet marten",
        "golden-eyed toad",
        "crested lark",
        "black-footed stoat",
        "pale vole",
        "thorny lizard",
        "spotted newt",
        "greater swift",
        "grey-cheeked gecko",
        "lesser weasel",
        "painted heron",
    ),
    names=("{base}",),
    lower=True,
    details=(
        "Its name in the old dialect of {region} means 'little ghost'.",
        "It appears on the coat of arms of {town}.",
    ),
    overviews=(
        (
            "The {name} is a small animal of {region} that lives in {v_habitat} and feeds on "
            "{v_diet}.",
            ("habitat", "diet"),
        ),
        ("Easy to recognise by {v_looks}, the {name} {v_behaviour}.", ("looks", "behaviour")),
    ),
)


# ----------------------------------------------------------------------------- inventions


def _device(base, purpose, mechanism):
    return {"base": base, "purpose": purpose, "mechanism": mechanism}


INVENTION = Kind(
    "invention",
    16,
    {
        "origin": Attr(
            values=(
                ("a blacksmith", "a metalworker"),
                ("a village schoolteacher", "a teacher"),
                ("a ship's carpenter", "a woodworker from the navy"),
                ("a watchmaker", "a clock repairer"),
                ("a miller", "a man who ground grain"),
                ("a parish priest", "a cleric"),
                ("an army engineer", "a military engineer"),
                ("a glazier", "a window maker"),
            ),
            passages=(
                "The {name} was invented in {year} by {person}, {v} from {home}.",
                "{person}, {v} living in {home}, designed the {name} in {year}.",
                "In {year}, {v} from {home} named {person} built the first {name}.",
            ),
            details=(
                "The first working model took nearly {k} years to complete.",
                "The original drawings are kept in the archive of {home}.",
                "The inventor had no formal training and learned by repairing farm tools.",
                "A patent was granted two years later.",
            ),
            asks=(
                "who invented the {name}?",
                "when and where was the {name} created",
                "inventor of the {name}",
                "origin of the {name}",
            ),
            finds=("what did {q} called {person} invent?",),
        ),
        "purpose": Attr(
            passages=(
                "The {name} was designed for {v}.",
                "People used the {name} for {v}.",
                "The main purpose of the {name} was {v}.",
            ),
            details=(
                "Before it existed, the same work needed many hands and several days.",
                "It was soon put to uses its inventor never imagined.",
                "Its arrival changed daily work in {region} within a generation.",
                "A single one could do the work of about {k} labourers.",
            ),
            asks=(
                "what was the {name} used for",
                "purpose of the {name}",
                "what problem did the {name} solve?",
                "why was the {name} built",
            ),
            finds=("which invention was made for {q}?", "device for {q}"),
        ),
        "mechanism": Attr(
            passages=(
                "The {name} works by means of {v}.",
                "At the heart of the {name} is {v}.",
                "The key part of the {name} is {v}.",
            ),
            details=(
                "The design was simple enough that village smiths could repair it.",
                "Later versions replaced the wooden parts with steel.",
                "It needed careful adjustment every few weeks.",
                "A model of the mechanism is shown to schoolchildren in {town}.",
            ),
            asks=(
                "how does the {name} work",
                "mechanism of the {name}",
                "how is the {name} constructed inside?",
                "explain the working principle of the {name}",
            ),
            finds=("which device uses {q}?", "invention based on {q}"),
        ),
        "reception": Attr(
            values=(
                (
                    "the weavers' guild tried to have it banned, fearing for their jobs",
                    "opposition from craftsmen afraid of losing work",
                ),
                ("the navy ordered two hundred of them within a year", "a huge military order"),
                (
                    "it won the gold medal at the great exhibition in {town}",
                    "a prize at an exhibition",
                ),
                (
                    "critics dismissed it as a toy, and it sold poorly for a decade",
                    "mockery and poor sales",
                ),
                (
                    "farmers were slow to adopt it because it was expensive",
                    "reluctance because of its high price",
                ),
                (
                    "it made its inventor one of the richest people in {region}",
                    "commercial success that made its creator rich",
                ),
                (
                    "it was copied so widely that the inventor never earned anything from it",
                    "imitation without payment",
                ),
                (
                    "it caused a famous accident during its first public demonstration",
                    "a disaster at the first showing",
                ),
                ("a royal decree ordered every town to own one", "a law making it compulsory"),
                ("the army kept it secret for twenty years", "military secrecy"),
            ),
            passages=(
                "When the {name} first appeared, {v}.",
                "Reactions to the {name} were strong: {v}.",
                "The early years of the {name} were eventful, because {v}.",
            ),
            details=(
                "Newspapers of the time were full of drawings of it.",
                "The inventor wrote bitterly about those years in a memoir.",
                "Attitudes changed only after {year2}.",
            ),
            asks=(
                "how was the {name} received",
                "what happened when the {name} was introduced",
                "public reaction to the {name}",
                "was the {name} a success at first",
            ),
            finds=("which invention was met with {q}?",),
        ),
        "fate": Attr(
            values=(
                (
                    "the only surviving original now stands in the museum of {town}",
                    "on display in a museum",
                ),
                (
                    "it was pushed aside by steam-driven machines within fifty years",
                    "made obsolete by engines",
                ),
                ("it is still made today by a small workshop in {town}", "still manufactured"),
                ("all the originals were destroyed in a fire in {year2}", "lost in a blaze"),
                (
                    "it inspired a whole family of similar devices",
                    "the ancestor of many later designs",
                ),
                (
                    "it fell out of use when the need for it vanished",
                    "abandoned when no longer needed",
                ),
                (
                    "a replica is switched on once a year at a fair in {town}",
                    "a copy demonstrated annually",
                ),
            ),
            passages=(
                "As for the later history of the {name}, {v}.",
                "Over the following century the fortunes of the {name} changed: {v}.",
            ),
            details=(
                "Collectors pay high prices for the few examples in private hands.",
                "Historians still argue about how important it really was.",
            ),
            asks=(
                "what happened to the {name} later",
                "does the {name} still exist today?",
                "later history of the {name}",
                "where is the {name} now",
            ),
        ),
    },
    names=("{surname} {base}",),
    details=(
        "Models of it appear in many school textbooks.",
        "It is mentioned in almost every history of technology written in {region}.",
    ),
    records=(
        _device(
            "pump",
            (
                "lifting water from deep wells without the help of animals",
                "raising water from underground",
            ),
            (
                "a chain of leather buckets turned by a hand crank",
                "a loop of containers moved by a handle",
            ),
        ),
        _device(
            "loom",
            ("weaving patterned cloth much faster than by hand", "speeding up fabric making"),
            (
                "punched wooden cards that tell the threads which way to move",
                "cards with holes that control the pattern",
            ),
        ),
        _device(
            "lamp",
            ("lighting mine tunnels without setting off explosions", "safe light underground"),
            (
                "a flame enclosed in fine wire gauze that keeps the heat in",
                "a mesh cage around the fire",
            ),
        ),
        _device(
            "kiln",
            ("firing pottery at an even temperature", "baking clay evenly"),
            ("hot air circulating through a spiral of brick channels", "coiled flues"),
        ),
        _device(
            "compass",
            ("finding direction at sea when clouds hide the stars", "navigating in bad weather"),
            ("a magnetised needle floating in a bowl of oil", "a magnetic pointer in liquid"),
        ),
        _device(
            "sledge",
            ("hauling heavy blocks of stone across snow", "moving heavy loads over snow"),
            ("runners made from whalebone coated in wax", "waxed bone skids"),
        ),
        _device(
            "press",
            ("printing maps in several colours at once", "multicolour map printing"),
            (
                "separate engraved plates for each colour, lined up with pins",
                "aligned plates, one per colour",
            ),
        ),
        _device(
            "clock",
            ("keeping accurate time on rolling ships", "timekeeping at sea"),
            (
                "a balance wheel mounted on springs so that the waves do not disturb it",
                "a cushioned oscillator that resists motion",
            ),
        ),
        _device(
            "still",
            ("turning sea water into drinking water", "making salt water drinkable"),
            (
                "a sloping glass roof that collects vapour raised by the heat of the sun",
                "solar evaporation under glass",
            ),
        ),
        _device(
            "plough",
            ("breaking the heavy clay soils of the river valleys", "tilling sticky earth"),
            (
                "a curved iron blade that turns the soil over instead of merely cutting it",
                "a metal board that flips the ground",
            ),
        ),
        _device(
            "lock",
            ("securing treasury vaults", "protecting strongrooms full of money"),
            (
                "seven rotating discs that must all line up before the bolt will move",
                "a combination of turning wheels",
            ),
        ),
        _device(
            "telescope",
            ("observing the moons of distant planets", "studying far-away moons"),
            (
                "a pair of curved mirrors instead of glass lenses",
                "reflecting surfaces rather than lenses",
            ),
        ),
        _device(
            "stove",
            ("heating a whole house with very little firewood", "warming a home cheaply"),
            (
                "a long winding smoke passage inside a mass of stone that stores the warmth",
                "heat kept in thick masonry",
            ),
        ),
        _device(
            "diving bell",
            ("repairing bridge foundations under water", "working beneath a river"),
            (
                "an open-bottomed iron chamber fed with air through leather hoses",
                "an air-filled metal box lowered on ropes",
            ),
        ),
        _device(
            "seed drill",
            ("sowing grain in straight, evenly spaced rows", "planting crops in neat lines"),
            (
                "a hopper that drops seeds through tubes behind small ploughshares",
                "tubes feeding seed into furrows",
            ),
        ),
        _device(
            "semaphore",
            (
                "sending messages across the country in hours rather than days",
                "fast long-distance communication",
            ),
            (
                "wooden arms on a mast, set in a different position for each letter",
                "movable beams that spell words",
            ),
        ),
    ),
    overviews=(
        (
            "The {name}, built by {v_origin} in {year}, was meant for {v_purpose}.",
            ("origin", "purpose"),
        ),
    ),
)


# ----------------------------------------------------------------------------- dishes


def _dish(base, ingredients):
    return {"base": base, "ingredients": ingredients}


DISH = Kind(
    "dish",
    16,
    {
        "origin": Attr(
            values=(
                (
                    "an innkeeper who had nothing else left in the larder",
                    "a tavern owner with an empty pantry",
                ),
                ("soldiers camped outside the walls during a siege", "an army under siege"),
                ("the cook of a wealthy abbey", "a monastery kitchen"),
                ("poor fishermen who used whatever the nets brought in", "fishing families"),
                ("a baker trying to use up stale bread", "a baker avoiding waste"),
                (
                    "the shepherds who spent summers on the high pastures",
                    "herders in the mountains",
                ),
            ),
            passages=(
                "{name} comes from {home}, where it was first recorded in {year}. Tradition says "
                "it "
                "was invented by {v}.",
                "The dish called {name} originated in {home}, in {region}; the story goes that it "
                "was first made by {v}.",
            ),
            details=(
                "The first written recipe appears in a cookbook by {person}.",
                "Its name means 'little pocket' in the old dialect.",
                "Neighbouring towns claim it too, but the oldest records point to the same place.",
            ),
            asks=(
                "where does {name} come from",
                "origin of the dish {name}",
                "history of {name} and who first made it",
            ),
            finds=("dish first cooked by {q}", "traditional food of {home} created by {q}"),
        ),
        "ingredients": Attr(
            passages=(
                "{name} is made from {v}.",
                "The main ingredients of {name} are {v}.",
                "A proper {name} needs {v}.",
            ),
            details=(
                "Some cooks add a spoonful of vinegar at the end.",
                "Family recipes differ, but the basic ingredients never change.",
                "Cooks insist that only local produce will do.",
            ),
            asks=(
                "what goes into {name}",
                "ingredients of {name}",
                "what is {name} made of?",
                "{name} recipe components",
            ),
            finds=("which dish contains {q}?", "traditional food made with {q}"),
        ),
        "method": Attr(
            values=(
                (
                    "baked for several hours in a clay pot sealed with dough",
                    "cooked slowly in a closed earthenware vessel",
                ),
                ("simmered overnight over the embers of the fire", "cooked gently all night"),
                ("wrapped in cabbage leaves and steamed", "steamed inside leaves"),
                ("fried quickly in goose fat", "pan-fried in animal fat"),
                ("left to bake slowly in a pit of hot ashes", "cooked underground"),
                ("smoked over beech wood for two days", "smoke-cured"),
                ("boiled in salted water and then grilled", "boiled and then charred"),
                ("left to ferment for a week before cooking", "fermented first"),
                ("baked on a hot flat stone", "cooked on a heated rock"),
                ("rolled thin, filled and folded into small parcels", "stuffed and folded"),
            ),
            passages=(
                "To make {name}, the mixture is {v}.",
                "{name} is traditionally {v}.",
                "The classic way to prepare {name}: it is {v}.",
            ),
            details=(
                "The whole process takes the better part of a day.",
                "Modern kitchens take shortcuts, but purists say it is not the same.",
                "The technique is passed down from one generation to the next.",
            ),
            asks=(
                "how is {name} cooked?",
                "how do you prepare {name}",
                "cooking method for {name}",
                "{name} preparation",
            ),
            finds=("which dish is {q}?",),
        ),
        "occasion": Attr(
            values=(
                (
                    "eaten on the first day of the new year for good luck",
                    "a new year's dish for luck",
                ),
                ("served at weddings, where the bride cuts the first slice", "wedding food"),
                ("given to women who have just had a baby", "food for new mothers"),
                ("eaten by farm workers at harvest time", "a harvest meal"),
                ("prepared for funerals and memorial meals", "mourning food"),
                ("sold at street stalls on market days", "a market snack"),
                ("packed for long journeys because it keeps for weeks", "food for travelling"),
                ("eaten on cold winter evenings", "winter comfort food"),
                ("served to guests as a sign of welcome", "a dish for welcoming visitors"),
                ("given to children on their name day", "a treat for a child's name day"),
            ),
            passages=(
                "{name} is usually {v}.",
                "Traditionally, {name} is {v}.",
                "By custom, {name} is {v}.",
            ),
            details=(
                "Refusing a piece is considered very rude.",
                "Shops sell ready-made versions, but most families still make their own.",
                "The custom is described in a travel book from {year2}.",
            ),
            asks=(
                "when is {name} eaten",
                "what occasion is {name} served at",
                "customs around {name}",
            ),
            finds=("what is eaten as {q}?", "{q} in {region}"),
        ),
        "serving": Attr(
            values=(
                (
                    "cut into thick slices and eaten cold with pickles",
                    "served chilled with sour vegetables",
                ),
                ("served in a hollowed-out loaf of bread", "eaten from a bread bowl"),
                (
                    "eaten straight from the pot with wooden spoons",
                    "shared from the cooking vessel",
                ),
                (
                    "covered with melted butter and sprinkled with sugar",
                    "topped with butter and sugar",
                ),
                ("accompanied by a small glass of plum brandy", "with fruit liquor"),
                ("served on a bed of boiled buckwheat", "over grain"),
                ("dipped in a sharp garlic sauce", "with a garlic dip"),
                ("eaten hot, with a spoonful of sour cream on top", "topped with soured cream"),
            ),
            passages=(
                "{name} is {v}.",
                "At the table, {name} is {v}.",
                "According to custom, {name} is {v}.",
            ),
            details=(
                "Leftovers are said to taste even better the next day.",
                "Restaurants in {town} serve a fancier version.",
                "Children often get a smaller, milder portion.",
            ),
            asks=("how is {name} served", "what do you eat with {name}", "serving {name}"),
        ),
    },
    names=("{word} {base}",),
    lower=True,
    details=(
        "Every family claims to have the best recipe.",
        "Visitors to {region} are always encouraged to try it.",
    ),
    records=(
        _dish(
            "pie",
            ("mutton, barley and a great deal of black pepper", "lamb meat and grain with spice"),
        ),
        _dish("stew", ("smoked eel and potatoes", "cured fish and tubers")),
        _dish("pasty", ("wild mushrooms, onions and sour cream", "forest fungi and dairy")),
        _dish("sausage", ("pork, apples and juniper berries", "pig meat with fruit")),
        _dish("soup", ("lentils cooked with dried plums", "pulses with prunes")),
        _dish("pie", ("river trout, dill and butter", "freshwater fish with herbs")),
        _dish("flatbread", ("goat cheese and young nettles", "cheese with stinging leaves")),
        _dish("stew", ("beef cooked slowly in dark beer", "meat braised in ale")),
        _dish(
            "hotpot", ("chickpeas, garlic and roasted peppers", "beans with garlic and capsicum")
        ),
        _dish("soup", ("rabbit and chestnuts", "game with nuts")),
        _dish("cake", ("honey, walnuts and poppy seed", "nuts and seeds with honey")),
        _dish("tart", ("sour cherries and soft cheese", "tangy fruit and curd")),
        _dish("pudding", ("pumpkin and cinnamon", "squash with spice")),
        _dish("loaf", ("buckwheat flour and plum jam", "dark grain with fruit preserve")),
        _dish("cake", ("caramelised pears and cream", "cooked pear with dairy")),
        _dish("shortbread", ("almonds and rosewater", "nuts with flower essence")),
    ),
    overviews=(
        (
            "{name} is a traditional dish made with {v_ingredients} and {v_method}.",
            ("ingredients", "method"),
        ),
    ),
)


# ----------------------------------------------------------------------------- companies

COMPANY = Kind(
    "company",
    16,
    {
        "founding": Attr(
            values=(
                ("had met as apprentices in an iron foundry", "former apprentices"),
                ("were brothers-in-law", "relatives by marriage"),
                ("had served together on a merchant ship", "two ex-sailors"),
                ("had been rival shopkeepers on the same street", "former competitors"),
                ("had studied together at the academy in {town}", "old classmates"),
                ("were a retired schoolmaster and his former pupil", "a teacher and his student"),
            ),
            passages=(
                "{name} was founded in {year} by {person} and {person2}, who {v}.",
                "The firm {name} began in {year}, when {person} and {person2}, who {v}, pooled "
                "their savings.",
            ),
            details=(
                "Their first workshop was a rented room above a stable.",
                "The founders borrowed the starting money from a cousin in {town}.",
                "The company's first ledger, written by hand, is framed in the lobby.",
            ),
            asks=(
                "who started {name}",
                "founders of {name}",
                "when was the company {name} set up and by whom?",
            ),
            finds=("company started in {year} by {q}",),
        ),
        "products": Attr(
            values=(
                ("sewing machines for small tailoring shops", "equipment for making clothes"),
                ("matches and candles", "fire-lighting supplies"),
                ("iron stoves and cooking ranges", "kitchen heaters"),
                ("bicycles and, later, motor scooters", "two-wheeled vehicles"),
                ("umbrellas with folding steel frames", "rain protection"),
                ("tinned fish and vegetables", "canned food"),
                ("pianos and church organs", "keyboard instruments"),
                ("maps, atlases and globes", "geographic publications"),
                ("rope and fishing nets", "cordage for boats"),
                ("soap scented with lavender", "perfumed cleaning bars"),
                ("lenses for spectacles and cameras", "optical glass"),
                ("wallpaper printed with bird patterns", "decorative wall coverings"),
                ("toy soldiers made of tin", "metal figurines for children"),
                ("typewriters", "writing machines"),
                ("leather shoes and riding boots", "footwear"),
                ("barrels for wine and beer", "casks"),
            ),
            passages=(
                "{name} makes {v}.",
                "The main products of {name} are {v}.",
                "{name} became known across {region} for its {v}.",
            ),
            details=(
                "About {k} percent of its output is sold abroad.",
                "Its catalogue of {year2} listed more than {n}0 different models.",
                "Every item carries a small stamp in the shape of a crown.",
            ),
            asks=(
                "what does {name} produce",
                "products made by {name}",
                "what does the company {name} sell?",
            ),
            finds=("which company makes {q}?", "manufacturer of {q} in {region}"),
        ),
        "premises": Attr(
            values=(
                ("a converted grain warehouse by the harbour", "an old storehouse at the port"),
                (
                    "a glass-roofed factory hall on the edge of town",
                    "a workshop with a transparent ceiling",
                ),
                ("a former monastery", "an old religious building"),
                (
                    "a narrow five-storey building on the main square",
                    "a tall thin house in the centre",
                ),
                ("a brick complex next to the railway station", "red buildings by the trains"),
                ("a row of wooden sheds along the {river}", "timber huts on a riverbank"),
                ("a villa that once belonged to the founder's family", "the founders' old mansion"),
                ("an old fortress bought from the army", "a former military stronghold"),
            ),
            passages=(
                "The headquarters of {name} are in {home}, in {v}.",
                "{name} is based in {home}, where it occupies {v}.",
            ),
            details=(
                "Visitors can tour the building on the first Saturday of each month.",
                "The company has outgrown the site but refuses to move.",
                "A shop on the ground floor sells seconds at a discount.",
            ),
            asks=(
                "where is {name} based",
                "{name} head office location",
                "where are the headquarters of {name}?",
            ),
            finds=("which firm has its offices in {q}?", "company headquartered in {q} in {home}"),
        ),
        "ownership": Attr(
            values=(
                ("is still owned and run by the founding family", "family-owned"),
                ("is owned by its workers as a cooperative", "a worker-owned cooperative"),
                (
                    "has belonged to a larger rival since {year2}, though it kept its name",
                    "taken over by a competitor",
                ),
                ("is listed on the stock exchange of {town}", "publicly traded"),
                ("belongs to the town council of {home}", "municipally owned"),
                (
                    "has been run by the state since it was nationalised in {year2}",
                    "government-owned",
                ),
            ),
            passages=(
                "Today {name} {v}, and it employs about {n}0 people.",
                "With a staff of around {n}0, {name} {v}.",
            ),
            details=(
                "Most of the staff live within walking distance of the works.",
                "Wages there have long been above the regional average.",
            ),
            asks=(
                "who owns {name}",
                "how many people work at {name}?",
                "ownership and size of {name}",
            ),
            finds=("which company is {q}?",),
        ),
        "crisis": Attr(
            values=(
                (
                    "nearly went bankrupt after a warehouse fire in {year2}",
                    "was almost ruined by a blaze",
                ),
                (
                    "was shut down for months by a strike in {year2}",
                    "faced a long workers' walkout",
                ),
                ("won a famous court case over a stolen design", "won a lawsuit about copying"),
                ("lost a whole shipment in a storm off the coast", "lost cargo at sea"),
                (
                    "was the first firm in {region} to give its workers paid holidays",
                    "was first to offer employees paid vacations",
                ),
                (
                    "was fined heavily for polluting the {river}",
                    "was punished for poisoning a river",
                ),
            ),
            passages=(
                "The most dramatic moment in the history of {name} came when it {v}.",
                "{name} is still remembered in {region} because it {v}.",
            ),
            details=(
                "The episode is told in a small exhibition at the head office.",
                "The local newspaper followed the story for months.",
            ),
            asks=(
                "what dramatic event happened to {name}",
                "notable episode in the past of {name}",
                "biggest moment in the history of {name}",
            ),
            finds=("which company {q}?",),
        ),
    },
    names=(
        "{surname} & {surname2}",
        "{surname} Brothers",
        "{word} Works",
        "{surname} and Daughters",
    ),
    details=(
        "Its logo has hardly changed since the beginning.",
        "The firm publishes a short history of itself every ten years.",
    ),
    overviews=(("{name}, a maker of {v_products}, {v_crisis}.", ("products", "crisis")),),
)


# ----------------------------------------------------------------------------- events


def _event(name, cause, course, outcome):
    return {"name": name, "cause": cause, "course": course, "outcome": outcome}


EVENT = Kind(
    "event",
    14,
    {
        "when": Attr(
            values=(("{season}", "{season}"),),
            passages=(
                "{name} took place in the {v} of {year}, near {home} in {region}.",
                "{name} happened in {year}, in and around {home}.",
            ),
            details=(
                "The weather that season was unusually cold.",
                "Contemporary accounts disagree about the exact day.",
                "About {n}00 people were directly involved.",
            ),
            asks=(
                "when did {name} take place",
                "date and location of {name}",
                "where and when did {name} happen",
            ),
        ),
        "cause": Attr(
            passages=(
                "{name} was triggered by {v}.",
                "The main cause of {name} was {v}.",
                "Historians trace {name} back to {v}.",
            ),
            details=(
                "Tension had been building for several years.",
                "Some historians think the real reasons lay elsewhere.",
                "Pamphlets printed in {town} spread the news quickly.",
            ),
            asks=(
                "what caused {name}",
                "why did {name} happen?",
                "reasons behind {name}",
                "what led to {name}",
            ),
            finds=("which event was sparked by {q}?", "unrest in {region} caused by {q}"),
        ),
        "course": Attr(
            passages=(
                "The story of {name} is remembered for one scene: {v}.",
                "The decisive moment of {name} came when {v}.",
                "Accounts of {name} agree on one thing: {v}.",
            ),
            details=(
                "Eyewitnesses later wrote dozens of letters about it.",
                "A painting of the scene hangs in the town hall of {town}.",
                "Everything was over within {k} days.",
            ),
            asks=("what happened during {name}", "how did {name} unfold?", "events of {name}"),
            finds=("in which event {q}?",),
        ),
        "outcome": Attr(
            passages=(
                "In the end, {name} led to {v}.",
                "The result of {name} was {v}.",
                "{name} ended with {v}.",
            ),
            details=(
                "Its effects were felt in {region} for a generation.",
                "Each year a small ceremony marks the anniversary.",
                "Schoolbooks describe it as a turning point.",
            ),
            asks=("what was the result of {name}", "how did {name} end?", "consequences of {name}"),
            finds=("which event resulted in {q}?",),
        ),
        "leader": Attr(
            values=(
                (
                    "a miller's daughter who had never left her village",
                    "a young woman from a milling family",
                ),
                ("a retired general", "a former army commander"),
                ("the bishop of {town}", "a senior churchman"),
                ("a young lawyer", "an ambitious attorney"),
                ("a ship's captain", "a sea officer"),
                ("the mayor of {home}", "the head of the town council"),
                ("a wandering preacher", "a travelling religious speaker"),
            ),
            passages=(
                "The leading figure in {name} was {person}, {v}.",
                "{person}, {v}, played the central part in {name}.",
            ),
            details=(
                "A statue of {person} was later put up in {town}.",
                "Afterwards {person} went into exile and died abroad.",
                "Letters written by {person} at the time survive and are an important source.",
            ),
            asks=("who led {name}", "key person in {name}", "who was in charge during {name}?"),
            finds=("event in which {q} named {person} played the leading role",),
        ),
    },
    names=("{base}",),
    details=(
        "Songs about it are still sung in {region}.",
        "Several novels have been set during those days.",
    ),
    records=(
        _event(
            "the Salt Riots of {home}",
            ("a sharp rise in the tax on salt", "higher duties on salt"),
            (
                "crowds burned the tax office and the customs house",
                "government buildings were set on fire",
            ),
            (
                "the abolition of the tax and the dismissal of the governor",
                "the duty being repealed and the official sacked",
            ),
        ),
        _event(
            "the Battle of {home} Bridge",
            (
                "a dispute over who controlled the river tolls",
                "a quarrel about charges for using the waterway",
            ),
            (
                "a small force held the bridge for eleven days",
                "defenders kept the crossing for more than a week",
            ),
            (
                "a truce that split the tolls between the two sides",
                "an agreement to share the river fees",
            ),
        ),
        _event(
            "the Siege of {home}",
            (
                "the sudden death of the old duke without an heir",
                "a ruler dying without a successor",
            ),
            ("traitors opened the city gates at night", "betrayal let the attackers in"),
            ("a new ruling house that held power for two centuries", "a new dynasty taking over"),
        ),
        _event(
            "the Treaty of {home}",
            (
                "years of quarrelling over fishing rights in the northern bay",
                "a disagreement about fishing grounds",
            ),
            (
                "the negotiators met on a barge moored in the middle of the river",
                "talks were held on a boat",
            ),
            ("the first shared border between the two kingdoms", "an agreed frontier"),
        ),
        _event(
            "the Great Fire of {home}",
            ("a long drought that left the timber houses bone dry", "a period without rain"),
            (
                "the blaze spread from a bakery and burned for three days",
                "flames started in a bread oven",
            ),
            ("a law that all new houses must be built of stone", "a ban on wooden buildings"),
        ),
        _event(
            "the Flood of {year}",
            ("weeks of heavy rain on frozen ground", "storms falling on icy soil"),
            (
                "the water rose overnight and covered the lower town",
                "streets were submerged in a single night",
            ),
            ("the building of the great dykes along the river", "the construction of flood walls"),
        ),
        _event(
            "the {home} Uprising",
            ("the closing of the silver mines", "mines shutting down"),
            (
                "miners barricaded the valley road with ore carts",
                "workers blocked the route with wagons",
            ),
            ("the mines reopening under a workers' council", "workers taking control of the pits"),
        ),
        _event(
            "the War of the Two Banners",
            ("an insult to an ambassador at a royal banquet", "a diplomatic offence at a feast"),
            (
                "both fleets were scattered by a storm before the fighting was decided",
                "bad weather broke up the sea battle",
            ),
            ("a marriage between the two royal families", "a wedding that joined the dynasties"),
        ),
        _event(
            "the Canal Dispute",
            (
                "a quarrel over the route of a new canal",
                "disagreement about where a waterway should go",
            ),
            (
                "engineers from both towns dug rival trenches side by side",
                "competing channels were excavated next to each other",
            ),
            (
                "a court ruling that the canal should follow the old road",
                "a judge deciding its path",
            ),
        ),
        _event(
            "the Well Panic of {home}",
            ("rumours that the town wells had been poisoned", "fear of contaminated water"),
            (
                "people fled into the countryside carrying their water in barrels",
                "residents left town with their own drinking supplies",
            ),
            ("the first public water inspectors", "official checks on drinking water"),
        ),
        _event(
            "the Preacher's Revolt",
            ("the arrest of a popular preacher", "the jailing of a religious leader"),
            (
                "thousands of followers surrounded the prison and sang for three nights",
                "a crowd held a singing vigil outside the jail",
            ),
            ("his release and a new law on freedom of worship", "religious liberty"),
        ),
        _event(
            "the Forged Letter Affair",
            ("a forged letter claiming that a rebellion was being planned", "a fake document"),
            (
                "dozens of innocent officials were arrested in a single night",
                "blameless civil servants were arrested en masse",
            ),
            (
                "the resignation of the chancellor when the forgery was exposed",
                "the head of government stepping down",
            ),
        ),
        _event(
            "the Hunger Winter",
            ("two years of failed harvests", "crop failures"),
            (
                "the monasteries opened their granaries to feed the towns",
                "religious houses handed out their stored grain",
            ),
            ("public grain stores in every district", "state food reserves"),
        ),
        _event(
            "the Bell Strike of {home}",
            ("a cut in the wages of the bell founders", "lower pay for metal casters"),
            (
                "the workers rang every bell in town without stopping for a whole day",
                "bells rang nonstop as a protest",
            ),
            ("the first wage agreement in the history of the guild", "a pay deal"),
        ),
    ),
    overviews=(
        (
            "{name} came about because of {v_cause} and ended with {v_outcome}.",
            ("cause", "outcome"),
        ),
    ),
)


# ----------------------------------------------------------------------------- people


def _person(short, profession, work):
    return {"profession": profession, "work": work, "fill": {"short": short}}


PERSON = Kind(
    "person",
    18,
    {
        "profession": Attr(
            passages=(
                "{name} was {v}.",
                "Remembered as {v}, {name} worked for most of {his} life in {region}.",
            ),
            details=(
                "{he} was admired by some contemporaries and mocked by others.",
                "A street in {town} is named after {him}.",
                "Few portraits of {him} survive.",
            ),
            asks=(
                "what did {name} do for a living",
                "{name} profession",
                "what was {name}'s occupation?",
            ),
            finds=("who was {q}?", "name of {q} who worked in {region}"),
        ),
        "childhood": Attr(
            values=(
                (
                    "the youngest of nine children of a poor ferryman",
                    "from a large family of boatmen",
                ),
                ("the only child of a wealthy cloth merchant", "a rich trader's single child"),
                (
                    "an orphan raised by an aunt who kept an inn",
                    "brought up by a relative after losing both parents",
                ),
                ("the child of two travelling actors", "born to a family of performers"),
                ("the {child} of a lighthouse keeper", "raised at a coastal beacon"),
                ("raised on a remote sheep farm", "grew up among livestock in the hills"),
                ("the child of a family of clockmakers", "from a household of watch craftsmen"),
            ),
            passages=(
                "{name} was born in {home} in {year}, {v}.",
                "Born in {year} in {home}, {name} was {v}.",
            ),
            details=(
                "Neighbours later remembered a quiet, stubborn child.",
                "The family house still stands and carries a small plaque.",
                "{he} left home at the age of {age}.",
            ),
            asks=(
                "where was {name} born",
                "childhood and family of {name}",
                "early life of {name}",
            ),
        ),
        "training": Attr(
            values=(
                ("was taught at home by a travelling tutor", "home-schooled"),
                ("studied at the academy in {town}", "university-educated"),
                ("left school at twelve and taught {him}self almost everything", "self-educated"),
                ("spent seven years as an apprentice to {person}", "trained in an apprenticeship"),
                (
                    "studied law before turning to a very different career",
                    "first trained to be a lawyer",
                ),
                ("learned the basics in a monastery school", "educated by monks"),
            ),
            passages=(
                "As a young person, {name} {v}.",
                "{name} {v}, an experience {he} often described in later letters.",
            ),
            details=(
                "{he} was not a good student, according to surviving reports.",
                "Teachers noticed {his} talent early.",
            ),
            asks=("how was {name} educated", "where did {name} study?", "training of {name}"),
            finds=("which {short} was {q}?",),
        ),
        "work": Attr(
            passages=(
                "{name} is best known for {v}.",
                "The greatest achievement of {name} was {v}.",
                "Today {name} is remembered above all for {v}.",
            ),
            details=(
                "Critics at the time were divided.",
                "The work took {him} more than {k} years.",
                "It made {his} name across {region}.",
            ),
            asks=(
                "what is {name}'s most famous work",
                "major achievement of {name}",
                "what did {name} accomplish?",
            ),
            finds=("who is known for {q}?",),
        ),
        "death": Attr(
            values=(
                ("died in {year2} in a shipwreck off the coast", "drowned at sea"),
                ("spent {his} last years in a monastery", "retired to a religious house"),
                (
                    "lost {his} sight in old age but kept working by dictating to an assistant",
                    "went blind but continued working",
                ),
                (
                    "was imprisoned for debt and died in poverty",
                    "died poor after being jailed for money owed",
                ),
                ("lived to a great age and was buried in {town}", "had a very long life"),
                (
                    "died young of a fever caught while travelling",
                    "passed away early from an illness",
                ),
                ("emigrated across the sea and was never heard of again", "disappeared abroad"),
            ),
            passages=(
                "In the end, {name} {v}.",
                "The story of {name} ends like this: {he} {v}.",
            ),
            details=(
                "{his} papers were left to the library of {town}.",
                "Only a handful of friends attended the funeral.",
            ),
            asks=(
                "how did {name} die?",
                "last years of {name}",
                "what happened to {name} in old age",
            ),
            finds=("which {short} {q}?",),
        ),
    },
    details=(
        "{his} name is still familiar to schoolchildren in {region}.",
        "A short biography of {him} is still in print.",
    ),
    records=(
        _person(
            "painter",
            ("a painter of stormy seascapes", "an artist who depicted the ocean in bad weather"),
            (
                "a series of forty paintings of one lighthouse",
                "dozens of pictures of the same coastal tower",
            ),
        ),
        _person(
            "composer",
            ("a composer of church music", "a writer of sacred songs"),
            ("a mass for a thousand voices", "a huge choral work"),
        ),
        _person(
            "mapmaker",
            ("a mapmaker who charted the northern coast", "a cartographer"),
            ("the first accurate map of the northern islands", "precise charts of an archipelago"),
        ),
        _person(
            "physician",
            ("a physician who studied marsh fever", "a doctor researching a disease"),
            (
                "proving that marsh fever spreads through standing water",
                "discovering how an illness travels through stagnant pools",
            ),
        ),
        _person(
            "poet",
            (
                "a poet who wrote in the old dialect of {region}",
                "a writer of verse in a regional language",
            ),
            (
                "a long poem about a shepherd's journey to the sea",
                "an epic about a herder travelling to the ocean",
            ),
        ),
        _person(
            "astronomer",
            ("an astronomer who catalogued comets", "a stargazer"),
            ("predicting the return of a great comet", "forecasting when a comet would reappear"),
        ),
        _person(
            "architect",
            ("an architect of bridges", "a designer of river crossings"),
            ("a single-arch stone bridge over a gorge", "spanning a canyon with one vault"),
        ),
        _person(
            "botanist",
            ("a botanist who collected mountain flowers", "a plant scientist"),
            (
                "a herbarium of six thousand dried alpine plants",
                "a vast collection of pressed high-altitude flora",
            ),
        ),
        _person(
            "chess player",
            ("a chess champion", "a master of board games"),
            ("remaining unbeaten for twelve years", "an undefeated streak lasting over a decade"),
        ),
        _person(
            "explorer",
            ("an explorer of the southern deserts", "an adventurer in arid lands"),
            ("crossing the great salt desert on foot", "walking across a salt wasteland"),
        ),
        _person(
            "sculptor",
            ("a sculptor who worked in marble", "a stone carver"),
            ("a marble lion guarding the harbour", "a stone big cat by the port"),
        ),
        _person(
            "philosopher",
            ("a philosopher who wrote about friendship", "a thinker on companionship"),
            (
                "a short book of letters on loyalty",
                "a collection of correspondence about faithfulness",
            ),
        ),
        _person(
            "engineer",
            ("an engineer who built canal locks", "a waterway builder"),
            (
                "a staircase of twelve locks that lifts boats over a hill",
                "a flight of chambers raising vessels uphill",
            ),
        ),
        _person(
            "actor",
            ("a comic actor of the stage", "a funny theatre performer"),
            (
                "playing the foolish king more than two thousand times",
                "thousands of performances as a silly monarch",
            ),
        ),
        _person(
            "historian",
            ("a historian of the old kingdoms", "a scholar of ancient realms"),
            (
                "a twelve-volume chronicle of the kingdoms before the union",
                "a multi-volume history of early states",
            ),
        ),
        _person(
            "mathematician",
            ("a mathematician who studied prime numbers", "a number theorist"),
            (
                "a table of all prime numbers below ten million",
                "a list of primes up to a huge limit",
            ),
        ),
        _person(
            "bell founder",
            ("a bell founder", "a caster of church bells"),
            (
                "the great bell of the cathedral, which weighs eleven tonnes",
                "an enormous bell for a church",
            ),
        ),
        _person(
            "midwife",
            ("a midwife who trained village women", "a birth attendant and teacher"),
            (
                "a handbook on safe childbirth used for a century",
                "a long-lived guide to delivering babies",
            ),
        ),
    ),
    overviews=(
        ("{name}, {v_profession}, is remembered above all for {v_work}.", ("profession", "work")),
    ),
)

KINDS = (TOWN, CREATURE, INVENTION, DISH, COMPANY, EVENT, PERSON)
