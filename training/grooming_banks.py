"""Phrase banks of the synthetic grooming corpus (``training.grooming_corpus``): the risk patterns,
the English banks (slot values, risk-pattern and child-reply lines, chit-chat, benign families with
their hard negatives, slang, synonyms, affixes) and the registry of corpus languages (English and
those of ``training.grooming_lang``), with :func:`language` to look one up.

Data only, plus that look-up: the corpus module assembles conversations from these banks and
re-exports every name here, so ``training.grooming_corpus.GROOMER`` and the like keep working.
"""
from __future__ import annotations

import importlib
import re

from training.grooming_lang import Family, Language
from training.grooming_lang import de as _de
from training.grooming_lang import fr as _fr
from training.grooming_lang import from_module, with_extra
from training.grooming_lang import nl as _nl

#: Risk patterns, in the usual stage order (a message shows at most one).
PATTERNS = (
    "age_check",
    "friendship",
    "relationship",
    "risk_assessment",
    "secrecy",
    "isolation",
    "private_channel",
    "gifts",
    "photo_request",
    "meeting",
)
#: Patterns that on their own already move a conversation towards risk.
STRONG_PATTERNS = frozenset({"risk_assessment", "secrecy", "isolation", "private_channel", "gifts",
                             "photo_request", "meeting"})
_STAGE = {p: i for i, p in enumerate(PATTERNS)}

# --------------------------------------------------------------------------------------------
# Slot values. "both" values appear in either split; "eval" values only in evaluation.
# --------------------------------------------------------------------------------------------
SLOTS = {
    "app": {"train": ["snapchat", "discord", "whatsapp", "kik"], "eval": ["telegram", "signal", "instagram dms"]},
    "game": {"train": ["minecraft", "fortnite", "roblox", "among us"], "eval": ["valorant", "rocket league", "apex"]},
    "currency": {"train": ["robux", "v-bucks", "coins"], "eval": ["gems", "credits"]},
    "store": {"train": ["amazon", "steam", "itunes"], "eval": ["google play", "xbox", "target"]},
    "place": {"train": ["the mall", "the park", "the skate park", "the library"],
              "eval": ["the cinema", "the arcade", "the bowling alley"]},
    "day": {"train": ["saturday", "tomorrow", "friday", "this weekend"], "eval": ["sunday", "next week", "thursday"]},
    "time": {"train": ["3", "4", "5:30", "2pm"], "eval": ["6", "noon", "half past four"]},
    "age": {"train": ["11", "12", "13", "14"], "eval": ["12", "13", "15"]},
    "grade": {"train": ["6th", "7th", "8th"], "eval": ["7th", "9th"]},
    "name": {"train": ["emma", "jake", "lily", "noah", "mia", "leo"], "eval": ["zoe", "sam", "ava", "finn"]},
    "subject": {"train": ["math", "science", "history"], "eval": ["spanish", "geography"]},
    "sport": {"train": ["soccer", "basketball", "swim"], "eval": ["hockey", "volleyball"]},
    "relative": {"train": ["grandma", "aunt sue", "grandpa"], "eval": ["nana", "uncle tom"]},
    "show": {"train": ["stranger things", "the new marvel movie", "that anime"], "eval": ["wednesday", "the new pixar movie"]},
    "thing": {"train": ["headphones", "a new controller", "a hoodie"], "eval": ["a keyboard", "a skateboard"]},
}

# --------------------------------------------------------------------------------------------
# Risk-pattern messages (sent by the adult). Never sexual.
# --------------------------------------------------------------------------------------------
GROOMER = {
    "age_check": {
        "train": ["how old are you", "how old r you btw?", "so what grade are you in", "you're like {age} right?",
                  "wait how old are you again", "are you in middle school?", "what year were you born",
                  "you're {age}? you seem older", "what school do you go to", "when's your birthday, how old will you be",
                  "are you still in {grade} grade", "i bet you're only {age} lol"],
        "eval": ["whats your age", "you still in {grade} grade?", "you must be about {age} huh",
                 "how old did you say you were", "r u in high school yet"],
    },
    "friendship": {
        "train": ["you're so mature for your age", "you're really smart, not like other kids",
                  "i love that we like the same stuff", "you're honestly so cool to talk to",
                  "i was exactly like you at your age", "you're way more interesting than people my age",
                  "you get it, most kids your age don't", "you act so much older than {age}",
                  "i can talk to you about anything", "you're smarter than most adults i know",
                  "i like talking to you more than to my friends", "no one your age is as cool as you"],
        "eval": ["you seem older than you are", "talking to you is the best part of my day",
                 "you're not like the others, you actually get me", "you're so grown up for a {grade} grader",
                 "honestly you're more mature than people i work with"],
    },
    "relationship": {
        "train": ["i feel like i've known you forever", "you're the only one who really gets me",
                  "i trust you more than anyone", "you're special to me, you know that",
                  "i think about our chats all day", "we have such a special friendship",
                  "i'd be lost without our talks", "you're my favourite person to talk to",
                  "i've never had a friend like you", "i feel so close to you",
                  "you're the first person i want to tell everything", "we're meant to be best friends"],
        "eval": ["nobody understands me like you do", "i'd do anything for you",
                 "you mean more to me than anyone else", "our friendship is different from anything",
                 "you're all i think about lately"],
    },
    "risk_assessment": {
        "train": ["are your parents home right now?", "are you alone rn?", "does anyone check your phone",
                  "do your parents read your messages", "what time do your parents get home",
                  "who else uses your computer", "is anyone watching over your shoulder",
                  "is anyone else in the room with you", "do your parents know you're on here",
                  "does your mom look at your phone at night", "are you by yourself after school",
                  "does anyone else know your password"],
        "eval": ["is your mom around or just you", "does anyone look at your chats",
                 "when are you usually by yourself", "can anyone see your screen right now",
                 "who's home with you rn"],
    },
    "secrecy": {
        "train": ["don't tell anyone about our chats", "delete our messages ok?", "this is our secret",
                  "keep this between us, your parents wouldn't get it", "if anyone asks, i'm just a friend from school",
                  "clear your chat history after we talk", "promise you won't tell your mom about me",
                  "don't tell your friends about me ok", "make sure nobody sees these messages",
                  "people wouldn't understand us, keep it quiet", "you can't tell anyone, promise?",
                  "hide this app from your parents"],
        "eval": ["nobody else needs to know we talk", "wipe this convo when we're done",
                 "this stays just between you and me", "don't mention me to anyone ok, they'd ruin it",
                 "lets keep us a secret from everyone"],
    },
    "isolation": {
        "train": ["your parents don't understand you like i do", "your friends sound fake tbh",
                  "you don't need them, you have me", "your mom is way too strict with you",
                  "they just want to control you", "i'm the only one on your side",
                  "your parents never listen to you", "your friends don't really care about you",
                  "your family treats you like a baby", "you should spend less time with them and more with me",
                  "no one at school gets you like i do", "your sister sounds so mean to you"],
        "eval": ["your family doesn't really listen to you huh", "those kids at school don't deserve you",
                 "you'd be better off without those friends", "your dad never gets you, i do",
                 "they don't appreciate you, i do"],
    },
    "private_channel": {
        "train": ["add me on {app}", "let's move to {app}, it's more private", "what's your number? i'll text you",
                  "this app is boring, {app} is better for us", "do you have {app}? messages disappear there",
                  "dm me on {app} instead", "text me on {app} so we can talk properly",
                  "download {app}, it's safer for us", "let's chat on {app} where no one can see",
                  "can you make a secret {app} account", "send me your number and we'll talk there",
                  "message me privately on {app}"],
        "eval": ["let's talk somewhere else, got {app}?", "give me your phone number",
                 "we should switch to {app} so it's just us", "hit me up on {app}, this site is watched",
                 "make an account on {app} just for me"],
    },
    "gifts": {
        "train": ["i can get you some {currency} if you want", "want me to buy you {thing}?",
                  "i'll send you a {store} gift card", "i got you a present, you'll love it",
                  "i'll top up your {game} account", "i can pay for your phone bill",
                  "i'll buy you the new skin you wanted", "want some money for {game}?",
                  "i'll get you {thing}, just for you", "i can send you {currency}, don't worry about paying me back",
                  "i bought you something special", "tell me what you want for your birthday and it's yours"],
        "eval": ["let me buy you something nice", "i'll load up your account with {currency}",
                 "you deserve a gift, pick anything", "i sent you some money for {game}",
                 "i'll treat you to whatever you want"],
    },
    "photo_request": {
        "train": ["send me a selfie", "send a pic of you", "turn on your camera", "can i see what you look like?",
                  "video call me? just you", "send me a picture of yourself", "send me a selfie right now",
                  "can you turn your camera on for me", "i want to see you, send a pic", "show me a photo of you",
                  "take a selfie for me", "can we video chat, just us two"],
        "eval": ["got any recent pics of you?", "put your cam on for me", "show me your face on video",
                 "snap me a photo of you right now", "send me a new pic of yourself"],
    },
    "meeting": {
        "train": ["we should meet up sometime", "i could pick you up after school", "let's meet at {place} {day}",
                  "i can come to your town {day}", "we should hang out irl, just us", "come meet me at {place}, come alone",
                  "i want to meet you in real life", "i can drive to {place} to see you", "where do you live? i'll visit",
                  "tell your mom you're at a friend's and meet me", "can you sneak out to see me",
                  "i'll wait for you at {place} {day}"],
        "eval": ["when can i see you in person", "i'll drive over and get you {day}",
                 "let's finally meet face to face", "meet me by {place}, don't bring anyone",
                 "what's your address, i'll come by"],
    },
}

#: Replies a child might give (label: no pattern).
CHILD_REPLY = {
    "age_check": {"train": ["im {age}", "{age} why", "{grade} grade", "im {age} lol"],
                  "eval": ["{age} haha", "i'm in {grade}", "turning {age} soon"]},
    "friendship": {"train": ["lol thanks", "aw really?", "haha ok", "thx"], "eval": ["omg thank you", "haha stop"]},
    "relationship": {"train": ["aw", "me too i guess", "ok", "haha"], "eval": ["really?", "thats nice"]},
    "risk_assessment": {"train": ["no they're at work", "my mom checks sometimes", "im alone rn", "idk why"],
                        "eval": ["just me", "my dad gets home late", "nobody checks"]},
    "secrecy": {"train": ["ok i won't", "why?", "ok", "i guess"], "eval": ["sure", "why tho", "fine"]},
    "isolation": {"train": ["yeah kinda", "idk", "they're ok i guess", "maybe"], "eval": ["sometimes", "ya"]},
    "private_channel": {"train": ["i don't have that", "ok", "my mom doesn't let me", "maybe later"],
                        "eval": ["hmm ok", "i'll ask", "idk"]},
    "gifts": {"train": ["really??", "omg thanks", "you don't have to", "wow"], "eval": ["no way", "for real?"]},
    "photo_request": {"train": ["why", "maybe later", "idk", "i look bad today"], "eval": ["hmm", "not now"]},
    "meeting": {"train": ["idk", "my mom wouldn't let me", "maybe", "where?"], "eval": ["hmm maybe", "i can't"]},
}

# --------------------------------------------------------------------------------------------
# Ordinary chit-chat shared by every conversation (label: no pattern).
# --------------------------------------------------------------------------------------------
CHITCHAT = {
    "train": [
        "hey", "hi", "hey whats up", "not much", "lol", "haha", "same", "ok", "cool", "nice", "omg",
        "did you finish the {subject} homework", "i'm so tired", "school was boring today", "what are you doing",
        "watching youtube", "playing {game}", "have you seen {show}?", "yeah it's so good", "no not yet",
        "i have a test {day}", "ugh same", "my dog did the funniest thing", "what did you eat", "pizza lol",
        "i'm bored", "me too", "brb", "back", "gtg dinner", "ok ttyl", "good luck on your test",
        "thanks!", "my {sport} game is {day}", "did you win?", "we lost lol", "what music do you like",
        "mostly pop", "that's funny", "wait what", "idk", "true", "yeah", "nope", "for real", "same here",
        "it's raining again", "i got a new phone case", "my brother is so annoying", "how was your day",
        "pretty good", "kinda bad", "i can't wait for summer", "what level are you on", "level {age} lol",
        "my mom made pasta", "i forgot my charger at school", "the new update is so buggy", "did you see that video",
        "omg yes", "that's so random", "my teacher gave us so much homework", "i'm at my grandparents", "sounds fun",
        "i need to clean my room", "what time is it there", "i just woke up lol", "we have a day off {day}",
        "can't talk long", "my phone is at 5 percent", "happy friday", "i got a good grade on my {subject} test",
        "congrats!", "my {sport} coach is so strict", "i want a puppy so bad", "what's your favourite food",
        # Longer everyday first-person lines (issue 17, second round): the short small talk alone let
        # any long sentence look like a groomer's.
        "i'm really looking forward to the summer holidays",
        "i told my mum i'd be home by six",
        "can you send me the {subject} notes later",
        "i think i left my jacket at your house",
        "my dad is picking me up after practice",
        "we're going to my aunt's this weekend",
        "i'm so nervous about the {subject} test tomorrow",
        "i can't wait for the new season of {show}",
        "my little brother broke my controller again",
        "i'm at home alone with my sister tonight, she's making pizza",
        "did you see what happened in class today",
        "i really want to get better at {game}",
        "honestly nothing special happened today",
        "my phone is so slow i need a new one",
        "i have to babysit my cousin on {day}",
        "we had a sub in {subject} and it was chaos",
        "i'm going to the cinema with my family",
        "my friend and i are making a video for youtube",
        "i don't really like the new teacher",
        "i got a new hoodie for my birthday",
        "i was thinking about joining the {sport} club",
        "my mum says i can have friends over on {day}",
        "i'm trying to save up for a new bike",
        "we're getting a dog next month i'm so happy",
    ],
    "eval": [
        "my grandma made soup", "the wifi keeps dropping", "i finished the book", "we're painting my room",
        "yo", "sup", "nm hbu", "lmao", "fr", "k", "bet", "ngl that's wild", "wyd", "just chilling",
        "i'm lowkey sleepy", "school dragged today", "did you do the {subject} worksheet", "ate tacos",
        "have you watched {show}", "it slaps", "my cat knocked everything over", "i'm so done with today",
        "weekend plans?", "nothing really", "which team are you on", "we tied", "hbu", "i'm down",
        "gotta eat, back later", "that's crazy", "it's so hot today", "what's your fav song rn",
    ],
}

# --------------------------------------------------------------------------------------------
# Benign families: role names, roles' minority, and lines per role. Many lines are deliberate
# hard negatives that share words with the risk patterns. Lines prefixed "!" are the hard ones
# (documentation only; the prefix is stripped).
# --------------------------------------------------------------------------------------------
BENIGN_FAMILIES = [
    Family(
        "peers_gaming",
        {"train": ["!how old are you? i'm {age}", "!add me on {app} so we can play later", "what's your {game} username",
                   "wanna play {game} after school?", "!don't tell anyone my password lol", "turn on your mic we're starting",
                   "!what grade are you in", "gg that was close", "!i have extra {currency}, want some for the battle pass?",
                   "!you're really good for a {grade} grader", "!are you alone in the lobby? invite me",
                   "!keep our secret base hidden from the other team", "my little brother keeps unplugging the router"],
         "eval": ["!wait how old are you, you sound {age}", "!got {app}? easier to squad up there", "join my server",
                  "!keep our base location secret from the other team", "unmute you're muted",
                  "!i'll gift you the skin for your birthday, i have {currency} left"]},
        {"train": ["!i'm {age} too", "sure what's your tag", "i'm on in 10", "lol same grade", "ok sending friend request",
                   "my mic is broken", "thanks!!"],
         "eval": ["!{age} lol same", "ok joining", "bet", "my wifi is lagging"]},
    ),
    Family(
        "surprise_party",
        {"train": ["!it's a surprise so don't tell mom!!", "!keep it a secret ok? her birthday is {day}",
                   "!we're meeting at {name}'s house at {time} to set up", "!i got her a {store} gift card",
                   "!delete this chat so she doesn't see it lol", "can you bring balloons", "!don't tell anyone yet",
                   "!promise you won't tell dad, it's his surprise", "!make sure she doesn't see your phone",
                   "!we'll all chip in for a present", "!hide the gift in your closet", "the cake place closes at 6"],
         "eval": ["!shh this is top secret, dad can't find out", "!let's meet at {place} to buy the cake",
                  "!nobody say anything to her ok", "!clear the group chat after so she won't see it",
                  "!i'm getting her a gift card for {store}"]},
        {"train": ["ok my lips are sealed", "i'll bring the cake", "what time again", "she's going to cry lol",
                   "i won't tell"],
         "eval": ["i'll hide the presents", "omg she'll be so happy", "ok who's bringing candles"]},
    ),
    Family(
        "parent_child",
        {"train": ["!turn on your camera, {relative} wants to say hi", "!are you home alone? i'll be back at {time}",
                   "!i'll pick you up after school at {time}", "did you finish your homework",
                   "!send me a pic of the permission slip", "don't open the door for strangers", "love you, see you at dinner",
                   "!don't tell your sister about her present", "!is anyone else home with you?",
                   "!send me a selfie when you get to practice so i know you're safe", "!meet me at {place} at {time}",
                   "remember to feed the dog", "!who are you texting so late? put the phone away"],
         "eval": ["!can you put the camera on for the video call with {relative}", "!is your brother home with you?",
                  "!meet me outside the school gate at {time}", "!snap a photo of your report card for me",
                  "!let's keep dad's birthday gift a secret"]},
        {"train": ["ok mom", "yes i'm home", "ok see you", "i did it already", "can we get pizza"],
         "eval": ["ok dad", "he's here", "k on my way"]},
    ),
    Family(
        "tutor_teacher",
        {"train": ["!send me a pic of your worksheet and i'll check it", "!we'll meet in the library at {time} for tutoring",
                   "!turn on your camera for the online class please", "!what grade are you in now?",
                   "!great job today, you're really talented at {subject}", "please tell your parents about the field trip form",
                   "the quiz is on {day}", "!you're so mature about your studies", "!your mom said you're home alone after school, do the reading first",
                   "!share your screen or send a photo of the problem", "!i'll bring you a book as a prize for finishing",
                   "see you in class"],
         "eval": ["!upload a photo of your essay draft", "!our session is in room 12 {day}",
                  "!cameras on everyone, class is starting", "!you're one of the most mature students in class",
                  "remind your mom to sign the form"]},
        {"train": ["ok here it is", "thank you!", "i'll be there", "can we go over fractions", "ok"],
         "eval": ["sent it", "see you then", "thanks miss"]},
    ),
    Family(
        "coach",
        {"train": ["!practice moved to {day}, meet at the field at {time}", "!you played great, you're a natural",
                   "!rides are available if your parents sign the form", "bring your water bottle", "good hustle today team",
                   "!tell your parents the tournament is {day}", "!send a team photo to the group chat",
                   "!we're getting medals for everyone, keep it a surprise for the little kids",
                   "!how old are you turning? you might move up an age group", "!meet at {place} before the away game"],
         "eval": ["!we're meeting at the gym {day} at {time}", "!you've got real talent, keep it up",
                  "!parents please confirm pickup times", "don't forget your shin guards"]},
        {"train": ["ok coach", "thanks coach", "will do", "can my mom drive me", "see you there"],
         "eval": ["got it", "ok thank you"]},
    ),
    Family(
        "relative_gift",
        {"train": ["!happy birthday!! i sent you a {store} gift card", "!did you get the present i mailed?",
                   "!send me a selfie with your new bike", "!how old are you now, {age}? you're growing so fast",
                   "!can we video call this weekend? turn on your camera so {relative} can see you",
                   "tell your mom i said hi", "!i'll bring you {thing} when we visit {day}",
                   "!we miss you, send a picture from school", "!is your mom home? i tried calling her",
                   "!we'll meet you at {place} for lunch {day}"],
         "eval": ["!there's a little gift in the mail for you", "!put the camera on so we can see your new haircut",
                  "!how old are you turning this year?", "!send us a picture from your party"]},
        {"train": ["thank you so much!!", "yes i got it", "here's the pic", "i'm {age}", "ok i'll tell her"],
         "eval": ["thank you!!", "it came today", "ok calling now"]},
    ),
    Family(
        "friends_mall",
        {"train": ["!wanna meet at {place} {day}?", "!my mom can drive us, meet at the food court at {time}",
                   "!send me a pic of the shoes you want", "!don't tell {name}, she'll be mad we didn't invite her",
                   "what movie should we see", "!text me on {app} when you're there", "!are your parents ok with it?",
                   "!let's buy {name} a gift card together", "!send a selfie of your new haircut", "i have 20 dollars"],
         "eval": ["!let's meet up at {place} after school", "!text me a photo of the hoodie",
                  "!keep it quiet, it's a surprise for {name}", "bring money for snacks"]},
        {"train": ["yes!!", "ok i'll ask my mom", "the white ones", "lol ok", "see you there"],
         "eval": ["down", "my dad can drive back", "sent"]},
    ),
    Family(
        "school_peers",
        {"train": ["!how old are you turning?", "!don't tell anyone i failed the quiz lol", "!can you send me a pic of the homework",
                   "!we should meet before class to study", "who's your {subject} teacher", "!add me on {app} for the group project",
                   "!my parents read my texts so don't say anything weird lol", "!are you alone at lunch? sit with us",
                   "!promise you won't tell anyone i like that band", "the bus was so late"],
         "eval": ["!when's your birthday, how old will you be", "!promise you won't tell anyone about my crush on that band",
                  "!snap me the notes from today", "!let's meet at the library at lunch"]},
        {"train": ["{age}!", "lol i won't", "sure one sec", "ok", "mr jones"], "eval": ["haha ok", "sent", "sure"]},
    ),
    Family(
        "club_leader",
        {"train": ["!club meets at {place} {day} at {time}", "!please ask a parent to sign the permission form",
                   "!send a photo of your science project for the display", "!how old are you? the junior group is under {age}",
                   "!we're giving gift cards as prizes at the fair", "!turn on your camera for the online meeting please",
                   "!parents are welcome to stay during practice", "!keep the prize a surprise until the ceremony",
                   "bring a pencil and a snack"],
         "eval": []},
        {"train": ["ok thanks", "my mom will come", "here's the photo", "cool"], "eval": []},
    ),
    # Held out entirely: only in the evaluation split.
    Family(
        "sleepover",
        {"train": [], "eval": ["!my mom said you can sleep over {day}", "!don't tell my sister, it's a secret movie night",
                               "!bring your camera, we're filming a dance video for {app}", "!meet at my house at {time}",
                               "!i'm {age} so i'm allowed to stay up late"]},
        {"train": [], "eval": ["yay!!", "ok i won't tell", "i'll bring snacks", "my mom said yes"]},
        splits=("eval",),
    ),
    Family(
        "scout_troop",
        {"train": [], "eval": ["!troop meets at {place} {day} at {time}", "!please have a parent sign the camping form",
                               "!we're collecting gift cards for the fundraiser", "!send a photo of your badge project",
                               "!how old are you? the junior group is up to {age}"]},
        {"train": [], "eval": ["ok thanks", "my dad will drive", "here's the photo"]},
        splits=("eval",),
    ),
    # Adults dating: scanned (the provider marks a minor as possibly present when it cannot verify
    # ages), a hard negative for the relationship, photo, channel and meeting patterns.
    Family(
        "adults_dating",
        {"train": ["!i had such a great time last night", "!you're honestly so easy to talk to",
                   "!i can't stop thinking about our date", "!send me a selfie from your trip",
                   "!add me on {app}, this dating app keeps logging me out", "!coffee {day}? the place near {place}",
                   "!i'll pick you up at {time}, dress warm", "what do you do for work?",
                   "!how old are you btw? your profile says 29", "!i feel like i've known you forever",
                   "!are you free this weekend or busy with work", "!i got you something small for our third date"],
         "eval": ["!your profile pics don't do you justice", "!let's grab dinner {day}, my treat",
                  "!text me on {app} after your shift", "!i'm 31, you?", "!can we video call tonight after work?"]},
        {"train": ["haha same", "i'd love that", "i'm 28, you?", "sure, after work", "that's sweet of you",
                   "ok see you then"],
         "eval": ["sounds lovely", "after my shift works", "i'm 30"]},
    ),
    # Adults: not scanned (Art. 7(7)), present so the non-scan path is exercised.
    Family(
        "adults_coworkers",
        {"train": ["!keep the party a secret from the boss", "!meet at {place} at {time}", "!i'll get a {store} gift card for her",
                   "!send me a pic of the receipt", "!how old is she turning?", "!add me on {app} for the team chat",
                   "!are you alone in the office? call me", "the printer is broken again"],
         "eval": ["!don't tell the team lead yet", "!turn on your camera for the standup", "!let's meet for lunch {day}"]},
        {"train": ["sounds good", "ok", "sure"], "eval": ["will do", "ok"]},
        minor=False,
    ),
]

# --------------------------------------------------------------------------------------------
# Slang, typos and affixes. Evaluation uses variants held out of training.
# --------------------------------------------------------------------------------------------
SLANG = {
    "train": {"you": ["u"], "your": ["ur"], "you're": ["ur", "youre"], "are": ["r"], "okay": ["ok"], "ok": ["k", "okk"],
              "because": ["cuz"], "really": ["rly"], "tomorrow": ["tmrw"], "don't": ["dont"], "please": ["pls"],
              "right now": ["rn"], "what's": ["whats"], "i'm": ["im"], "to be honest": ["tbh"], "people": ["ppl"]},
    "eval": {"you": ["ya", "yu", "u"], "your": ["yr", "ur"], "you're": ["ur", "ure"], "are": ["r"], "okay": ["oki"],
             "ok": ["okie"], "because": ["bc", "bcuz"], "really": ["rlly"], "tomorrow": ["tmr"], "don't": ["dnt"],
             "please": ["plz", "pleaseee"], "right now": ["rn"], "what's": ["wats"], "i'm": ["ima", "im"],
             "with": ["w"], "about": ["abt"], "people": ["ppl"]},
}
#: Shared vocabulary variation (the "language", the same in every split): a word may be swapped
#: for one of these alternatives. Applied alike to risk, benign and chit-chat lines, so no split
#: or class owns a word; what evaluation holds out is sentence frames, slang and families.
SYNONYMS = {
    "tell": ["mention it to", "tell"], "anyone": ["anybody", "anyone"], "parents": ["folks", "family", "parents"],
    "mom": ["mum", "mother", "mom"], "dad": ["father", "dad"], "delete": ["erase", "clear", "wipe", "remove"],
    "clear": ["delete", "wipe"], "messages": ["texts", "chats", "msgs", "dms"], "chat": ["convo", "conversation", "chat"],
    "chats": ["messages", "convos", "talks"], "pic": ["photo", "picture", "pic"], "photo": ["pic", "picture"],
    "picture": ["pic", "photo"], "camera": ["cam", "webcam", "camera"], "video": ["vid", "video"],
    "buy": ["get", "grab"], "gift": ["present"], "present": ["gift"], "money": ["cash"], "cool": ["awesome", "great", "fun"],
    "smart": ["clever", "bright"], "special": ["amazing", "important"], "friends": ["mates", "buddies"],
    "phone": ["cell", "mobile"], "computer": ["laptop", "pc"], "talk": ["chat", "talk"], "promise": ["swear"],
    "love": ["like", "adore"], "really": ["so", "super", "really"], "understand": ["get"], "app": ["site"],
    "school": ["class"], "house": ["place", "home"], "send": ["send", "text"], "alone": ["by yourself", "alone"],
    "know": ["find out", "know"], "sometime": ["soon", "one day"], "hang": ["chill"], "quiet": ["secret"],
}
SUFFIX = {"train": [" lol", " haha", " :)", "!!", " 😂", "?", " xx", " 🙂"],
          "eval": [" lmao", " xd", " fr", " ngl", " 😅", "!!!", " 👀", " hehe"]}
PREFIX = {"train": ["hey ", "btw ", "so ", "also "], "eval": ["yo ", "ngl ", "tbh ", "wait "]}

#: English (the banks above) and the languages of ``training.grooming_lang``, by ISO 639-1 code.
ENGLISH = Language("en", "English", SLOTS, GROOMER, CHILD_REPLY, CHITCHAT, BENIGN_FAMILIES, SLANG, SYNONYMS,
                   PREFIX, SUFFIX, ("sleepover", "scout_troop"), re.compile(r"[a-z']+"))
LANGUAGES = {lang.code: lang for lang in (ENGLISH, from_module(_nl, "nl", "Dutch"), from_module(_de, "de", "German"),
                                          from_module(_fr, "fr", "French"))}
LANGUAGE_CODES = tuple(LANGUAGES)
#: Benign families that share the risk patterns' vocabulary (precision on these is reported on
#: its own); the rest are ordinary chit-chat and adult conversations (not scanned).
HARD_NEGATIVE_FAMILIES = frozenset(f.name for lang in LANGUAGES.values() for f in lang.families if f.minor)


def language(code: str, extra_phrasings: int = 0) -> Language:
    """The corpus language ``code``. ``extra_phrasings`` adds issue 17's extra training phrasings
    (appended to each bank's "train" phrasings; "eval" ones never change): 1 (or True) the fifth
    round's (``training.grooming_lang.extra_<code>``; English has none), 2 those and the ninth
    round's (``training.grooming_lang.extra2_<code>``, every language)."""
    try:
        lang = LANGUAGES[code]
    except KeyError:
        raise ValueError(f"unknown corpus language {code!r}; one of {', '.join(LANGUAGE_CODES)}") from None
    level = int(extra_phrasings)
    if level not in (0, 1, 2):
        raise ValueError(f"extra_phrasings must be 0, 1 or 2, not {extra_phrasings!r}")
    if level >= 1 and code != "en":
        lang = with_extra(lang, importlib.import_module(f"training.grooming_lang.extra_{code}"))
    if level >= 2:
        lang = with_extra(lang, importlib.import_module(f"training.grooming_lang.extra2_{code}"))
    return lang
