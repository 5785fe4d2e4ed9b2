/**
 * Key words of the needle tasks, ported verbatim from tools/train/tasks.py (`_ADJ`, `_NOUN`): a key is an
 * adjective-noun pair ("bold-harbor"). attend-mini was trained with the other words only: by position, every 5th
 * word (index % 5 == 4) is held out, so the benchmark uses only those (HELDOUT_WORDS); TRAIN_WORDS is exported
 * for the tests that check that no training key reaches a benchmark prompt.
 */

const ADJ = `
abandoned able absolute academic acceptable acclaimed accurate aching acidic acrobatic adorable adventurous
aggressive agile alert alive amazing amused ancient angry animated annual anxious aquatic arctic arid aromatic
artistic ashamed astonishing athletic attentive austere automatic average awesome awkward bashful beloved
bitter blank blissful bold bouncy brave breezy brief bright brilliant brisk broken bumpy busy calm candid
careful cautious cheerful chilly chubby classic clever cloudy clumsy colossal common complex concrete confused
cool cosmic costly courageous cozy crafty creamy crisp crooked crowded cruel curious curly cute damp dapper
daring dazzling decent deep defiant delicate dense devoted diligent dizzy dreamy dusty eager early earnest
elastic elegant elderly electric elusive empty enchanted endless energetic enormous envious evergreen exotic
faded faint faithful famous fancy fearless feisty fierce filthy flashy flawless fluffy foggy fragile frantic
frosty frozen funny fuzzy gentle giant gifted gigantic glamorous gleaming gloomy glossy golden graceful grand
grateful greasy grumpy guilty handsome happy harmless hasty hearty heavy helpful hidden hollow honest hopeful
humble hungry icy idle immense impish jagged jolly joyful juicy jumpy keen kind knotty lanky lavish lazy
little lively lonely loud lucky lush magnetic majestic mellow merry mighty misty modest mossy muddy murky
mysterious narrow nervous nimble noble noisy nutty obedient odd orange ornate patient peaceful perky pesky
plain playful plucky polite proud puny purple quaint quick quiet radiant rapid rare restless rich rigid ripe
roaring robust rosy rough royal rusty sandy savage scarce secret serene shabby shaggy shiny silent silky silly
sleepy slim slippery smooth snappy sneaky soft solemn sparkling speedy spicy spotless square stale steady
steep sticky stormy striped sturdy sunny superb swift tall tame tangy tender thirsty thorny tidy tiny tired
tough tranquil tricky trusty twisted velvet vibrant vivid wacky warm wary wealthy weary whimsical wicked wild
windy wise witty wobbly wooden woolly worried yellow young zany zealous zesty
`.split(/\s+/).filter(Boolean);

const NOUN = `
acorn album anchor ant apple apron arrow attic avocado badge bagel balloon bamboo banana banjo barn basket bat
beacon beaver bell bench bicycle biscuit blanket blossom boat bonnet boot bottle boulder bracelet branch
bridge broom bubble bucket buffalo bugle bunny butterfly button cabin cactus camel camera canal candle canoe
canyon carpet carrot castle cat cello chair cherry chimney cliff clock cloud clover coconut comet compass
cookie coral cottage cow crab crayon cricket crow crown cup curtain cushion daisy deer desert diamond dolphin
donkey door dragon drum duck eagle easel elephant elm engine falcon feather fern ferret fiddle fig flag
flamingo flute forest fountain fox frog garden garlic gate giraffe glacier globe goat goose grape guitar
hammer harbor harp hat hawk hedgehog helmet heron hill honey horse hut igloo island jacket jaguar jar jelly
kettle key kite koala ladder lake lamp lantern lemon leopard lily lion lizard llama lobster locket magnet
mango maple meadow melon mirror mitten monkey moose mountain mouse mug mushroom needle nest notebook oak oar
ocean octopus olive orchard otter owl paddle palace panda parrot peach peacor pear pebble pelican pencil
penguin pepper piano pigeon pillow pine pirate planet plum pony potato puddle pumpkin puppy quilt rabbit
raccoon radish rainbow raven ribbon river robin rocket rose saddle sailboat salmon sandal scarf seal shell
ship shovel skunk sled snail spider spoon squirrel star statue stone strawberry swan sweater table teapot
tiger toad tomato torch tower tractor train tulip turtle umbrella valley vase violin volcano wagon walnut
walrus whale whistle willow window wolf yacht zebra
`.split(/\s+/).filter(Boolean);

const heldout = (words: string[]) => words.filter((_, i) => i % 5 === 4);
const train = (words: string[]) => words.filter((_, i) => i % 5 !== 4);

export const HELDOUT_WORDS = { adj: heldout(ADJ), noun: heldout(NOUN) };
export const TRAIN_WORDS = { adj: train(ADJ), noun: train(NOUN) };
