"""Synthetic, never-sexual chat corpus for the reference grooming classifier (DESIGN.md §5).

What it is
    Conversations between two participants, JSON Lines, one message a line:
    ``{"conversation_id", "sender", "sent_at" (RFC 3339), "text", "participants_minor",
    "pattern"}`` where ``pattern`` is the risk pattern the message shows (one of
    :data:`PATTERNS`) or ``null``. A second file holds one label a conversation:
    ``{"conversation_id", "label": "grooming"|"benign", "family", "participants_minor",
    "messages", "patterns"}``.

What it is not
    Real data, or anything sexual. Grooming conversations show only the *risk patterns* of the
    grooming-stage literature (O'Connell 2003; Black et al. 2015; PAN 2012 annotations), in
    plain non-sexual wording: asking the child's age, flattery and "friendship forming",
    relationship forming, risk assessment (are you alone, who reads your phone), exclusivity
    and secrecy, isolation from parents and friends, moving to a private channel, gifts and
    favours, meeting requests, and photo / camera requests phrased only as "send a selfie",
    "turn on your camera". The sexual stage of the literature is deliberately absent.

Hard negatives
    Most benign conversations share the vocabulary of the risk patterns: children planning a
    surprise party ("it's a secret, don't tell mom"), gamers asking each other's age and
    adding each other on another app, parents asking for the camera to be turned on for a call
    with grandma, a parent asking "are you home alone?", relatives sending a gift card, friends
    meeting at the mall, tutors asking for a picture of the homework, coaches praising a player.

Splits: train / calibration / evaluation
    Every template bank (risk patterns, child replies, benign families, chit-chat, slot values,
    slang, affixes) has phrasings used only for training and phrasings held out for evaluation;
    two benign families exist only in the evaluation split; each split has its own random
    stream. So the evaluation measures generalisation to unseen wording, not memorisation.
    The calibration split (for score calibration and thresholds) uses every fourth training
    phrasing of the risk patterns, benign families (first role) and chit-chat, which the
    training split never uses. No two splits share a conversation text. A shared synonym table (the
    "language") varies words alike in every split and class.

Languages
    English (the banks in this module) and, in ``training.grooming_lang``, Dutch, German and
    French, each written natively with its own phrasings, slang, school years, names, apps and
    hard-negative families (e.g. the Dutch Sinterklaas surprise, German Wichteln, the French fête
    des mères), not translated templates. Every language has the same split rules and its own
    random stream; :func:`generate_splits` takes ``languages`` and gives each conversation its
    ``language``. Hard negatives in every language include family, school, sport coaching,
    gaming friends and dating between adults (``adults_dating``: scanned, as when a provider
    cannot rule out a minor), see :data:`HARD_NEGATIVE_FAMILIES`.

Deterministic by seed (and independent of PYTHONHASHSEED):
``python -m training.grooming_corpus --out DIR --n 2000 --seed 1 [--languages en,nl,de,fr]`` writes
``DIR/{train,calibration,eval}/{messages,conversations}.jsonl`` and ``DIR/manifest.json``.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import random
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from training.grooming_lang import SPLITS, Family, Language
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


def language(code: str, extra_phrasings: bool = False) -> Language:
    """The corpus language ``code``; with ``extra_phrasings``, plus issue 17's fifth-round training
    phrasings (``training.grooming_lang.extra_<code>``; English has none)."""
    try:
        lang = LANGUAGES[code]
    except KeyError:
        raise ValueError(f"unknown corpus language {code!r}; one of {', '.join(LANGUAGE_CODES)}") from None
    if not extra_phrasings or code == "en":
        return lang
    return with_extra(lang, importlib.import_module(f"training.grooming_lang.extra_{code}"))


def _bank(split: str) -> str:
    return "eval" if split == "eval" else "train"


_SLOT_RE = re.compile(r"\{(\w+)\}")


def _pool(bank: dict, split: str, reserve: bool = False) -> list:
    """Phrasings of a bank for a split. "eval" uses the held-out phrasings. With ``reserve``, every
    fourth training phrasing (of lists of four or more) is kept for the "calibration" split, so
    calibration also sees phrasings the model never trained on; otherwise calibration shares the
    training phrasings."""
    if split == "eval":
        return list(bank.get("eval", []))
    items = list(bank.get("train", []))
    if not reserve:
        return items
    held = [t for i, t in enumerate(items) if len(items) >= 4 and i % 4 == 3]
    if split == "calibration":
        return held or items
    return [t for t in items if t not in held]


def _fill(template: str, rng: random.Random, split: str, lang: Language = ENGLISH) -> str:
    def repl(m):
        values = lang.slots[m.group(1)]
        pool = values["eval"] + values["train"][:1] if split == "eval" else values["train"]
        return rng.choice(pool)

    return _SLOT_RE.sub(repl, template)


def _slangify(text: str, rng: random.Random, split: str, p: float, lang: Language = ENGLISH) -> str:
    table = lang.slang[_bank(split)]
    for phrase in sorted(table, key=len, reverse=True):
        if " " in phrase and phrase in text and rng.random() < p:
            text = text.replace(phrase, rng.choice(table[phrase]))

    def repl(m):
        w = m.group(0)
        if w in table and rng.random() < p:
            return rng.choice(table[w])
        return w

    return lang.word_re.sub(repl, text)


def _paraphrase(text: str, rng: random.Random, p: float, lang: Language = ENGLISH) -> str:
    def repl(m):
        w = m.group(0)
        alts = lang.synonyms.get(w)
        return rng.choice(alts) if alts and rng.random() < p else w

    return lang.word_re.sub(repl, text)


def _typo(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not idx:
        return text
    i = rng.choice(idx)
    w = words[i]
    j = rng.randrange(1, len(w) - 1)
    kind = rng.random()
    if kind < 0.35:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]  # swap
    elif kind < 0.65:
        w = w[:j] + w[j + 1:]  # drop
    else:
        w = w[:j] + w[j] + w[j:]  # double
    words[i] = w
    return " ".join(words)


def noisify(text: str, rng: random.Random, split: str, style: dict, lang: Language = ENGLISH) -> str:
    """Chat-style variation: case, apostrophes, slang, typos, affixes. ``style`` is per sender."""
    text = _paraphrase(text, rng, style["synonyms"], lang)
    if rng.random() < style["lower"]:
        text = text.lower()
    text = _slangify(text, rng, split, style["slang"], lang)
    if rng.random() < style["apostrophes"]:
        text = text.replace("'", "")
    if rng.random() < style["typo"]:
        text = _typo(text, rng)
    if rng.random() < 0.12:
        text = rng.choice(lang.prefix[_bank(split)]) + text
    if rng.random() < 0.15:
        text = text.rstrip("?!.") + rng.choice(lang.suffix[_bank(split)])
    if rng.random() < 0.05:
        text = text.upper() if split != "eval" else text.capitalize()
    return text


def _style(rng: random.Random) -> dict:
    return {"lower": rng.uniform(0.5, 1.0), "slang": rng.uniform(0.0, 0.8),
            "apostrophes": rng.uniform(0.0, 0.9), "typo": rng.uniform(0.0, 0.25), "synonyms": rng.uniform(0.1, 0.6)}


# --------------------------------------------------------------------------------------------
# Conversation assembly
# --------------------------------------------------------------------------------------------
@dataclass
class Conversation:
    conversation_id: str
    label: str  # "grooming" | "benign"
    family: str
    participants_minor: bool
    messages: list = field(default_factory=list)  # dicts: sender, sent_at, text, pattern
    language: str = "en"

    def records(self) -> Iterator[dict]:
        for m in self.messages:
            yield {"conversation_id": self.conversation_id, "sender": m["sender"], "sent_at": m["sent_at"],
                   "text": m["text"], "participants_minor": self.participants_minor, "pattern": m["pattern"]}

    def label_record(self) -> dict:
        pats = sorted({m["pattern"] for m in self.messages if m["pattern"]}, key=_STAGE.get)
        return {"conversation_id": self.conversation_id, "label": self.label, "family": self.family,
                "participants_minor": self.participants_minor, "messages": len(self.messages), "patterns": pats,
                "language": self.language}


class _Builder:
    """Accumulates (speaker, text, pattern) turns, then stamps ids and times."""

    def __init__(self, rng: random.Random, split: str, lang: Language = ENGLISH):
        self.rng, self.split, self.lang = rng, split, lang
        self.turns: list[tuple[int, str, Optional[str]]] = []
        self.styles = (_style(rng), _style(rng))

    def say(self, speaker: int, template: str, pattern: Optional[str] = None) -> None:
        text = _fill(template.lstrip("!"), self.rng, self.split, self.lang)
        self.turns.append((speaker, noisify(text, self.rng, self.split, self.styles[speaker], self.lang), pattern))

    def chitchat(self, k: int) -> None:
        pool = _pool(self.lang.chitchat, self.split, reserve=True)
        speaker = self.rng.randrange(2)
        for _ in range(k):
            self.say(speaker, self.rng.choice(pool))
            if self.rng.random() < 0.75:  # mostly alternating, sometimes double-texting
                speaker = 1 - speaker

    def finish(self, cid: str, label: str, family: str, minor: bool) -> Conversation:
        rng = self.rng
        senders = [f"u{rng.randrange(10**6, 10**7)}", f"u{rng.randrange(10**6, 10**7)}"]
        while senders[1] == senders[0]:
            senders[1] = f"u{rng.randrange(10**6, 10**7)}"
        t = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(0, 300 * 86400))
        conv = Conversation(cid, label, family, minor, language=self.lang.code)
        for speaker, text, pattern in self.turns:
            gap = rng.choice([rng.randint(2, 90), rng.randint(60, 1800), rng.randint(3600, 20 * 3600)]
                             if rng.random() < 0.1 else [rng.randint(2, 240)])
            t += timedelta(seconds=gap)
            conv.messages.append({"sender": senders[speaker], "sent_at": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                  "text": text, "pattern": pattern})
        return conv


# Pacing (issue 17): early-stage grooming shows risk patterns from the first messages (an age
# question or "add me on snapchat" right after hello), so a conversation opens with 0-4 small-talk
# messages and a few messages of small talk lie between patterns. The benign families use the
# same prelude and gaps, so the hard negatives (a coach asking ages for the team list, a surprise
# kept from a sister) come just as early.
PRELUDE = (0, 4)  # small-talk messages before the first family/pattern line (were 1-8)
GAP = 2  # at most this many small-talk messages between two lines (were 4)
GAP_SUBTLE = 5  # ... between two patterns of a subtle grooming conversation (were 7)


def _grooming(rng: random.Random, split: str, cid: str, lang: Language = ENGLISH) -> Conversation:
    b = _Builder(rng, split, lang)
    adult = rng.randrange(2)
    child = 1 - adult
    subtle = rng.random() < 0.2
    k = rng.randint(2, 3) if subtle else rng.randint(3, 7)
    strong = [p for p in PATTERNS if p in STRONG_PATTERNS]
    chosen = [rng.choice(strong)]  # a list, not a set: set order would vary with PYTHONHASHSEED
    while len(chosen) < k:
        p = rng.choice(PATTERNS)
        if p not in chosen:
            chosen.append(p)
    steps = chosen + [p for p in chosen if rng.random() < 0.25]  # some patterns come back
    steps.sort(key=lambda p: _STAGE[p] + rng.uniform(-2.0, 2.0))
    b.chitchat(rng.randint(*PRELUDE))
    gap_hi = GAP_SUBTLE if subtle else GAP
    for step in steps:
        b.say(adult, rng.choice(_pool(lang.groomer[step], split, reserve=True)), step)
        if rng.random() < 0.7:
            b.say(child, rng.choice(_pool(lang.child_reply[step], split)))
        b.chitchat(rng.randint(0, gap_hi))
    b.chitchat(rng.randint(0, 6))
    return b.finish(cid, "grooming", "grooming_subtle" if subtle else "grooming", True)


def _benign(rng: random.Random, split: str, cid: str, families: list, lang: Language = ENGLISH) -> Conversation:
    fam = rng.choice(families)
    b = _Builder(rng, split, lang)
    a_lines, b_lines = _pool(fam.lines_a, split, reserve=True), _pool(fam.lines_b, split)
    b.chitchat(rng.randint(*PRELUDE))
    for _ in range(rng.randint(2, 6)):
        b.say(0, rng.choice(a_lines))
        if rng.random() < 0.7:
            b.say(1, rng.choice(b_lines))
        b.chitchat(rng.randint(0, GAP))
    b.chitchat(rng.randint(0, 6))
    if rng.random() < 0.5:  # either side may open the conversation
        b.turns = [(1 - s, t, p) for s, t, p in b.turns]
    return b.finish(cid, "benign", fam.name, fam.minor)


def _ordinary(rng: random.Random, split: str, cid: str, lang: Language = ENGLISH) -> Conversation:
    b = _Builder(rng, split, lang)
    b.chitchat(rng.randint(6, 40))
    return b.finish(cid, "benign", "chitchat", True)


def generate(n: int, seed: int = 1, split: str = "train", grooming_share: float = 0.35,
             language_code: str = "en", extra_phrasings: bool = False) -> list[Conversation]:
    """``n`` conversations of one split in one language, deterministic in (n, seed, split,
    language); each language has its own random stream (English keeps its original one).
    ``extra_phrasings``: see :func:`language`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    lang = language(language_code, extra_phrasings)
    stream = f"{split}/{seed}" if lang.code == "en" else f"{lang.code}/{split}/{seed}"
    rng = random.Random(f"csadetect-grooming-corpus/{stream}")
    families = [f for f in lang.families if split in f.splits and _pool(f.lines_a, split, reserve=True)]
    prefix = "" if lang.code == "en" else f"{lang.code}-"
    out = []
    for i in range(n):
        cid = f"{prefix}{split}-{seed}-{i:06d}"
        r = rng.random()
        if r < grooming_share:
            out.append(_grooming(rng, split, cid, lang))
        elif r < grooming_share + 0.12:
            out.append(_ordinary(rng, split, cid, lang))
        else:
            out.append(_benign(rng, split, cid, families, lang))
    return out


def conversation_text(conv: Conversation) -> str:
    return "\n".join(m["text"] for m in conv.messages)


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def generate_splits(n: int, seed: int = 1, n_eval: Optional[int] = None,
                    n_calibration: Optional[int] = None,
                    languages: Sequence[str] = ("en",), extra_phrasings: bool = False) -> dict[str, list[Conversation]]:
    """``{"train": n, "calibration": n_calibration (default n/4), "eval": n_eval (default n/2)}``
    conversations *per language* (``languages``: codes of :data:`LANGUAGES`), each language's
    after the other's. A calibration or evaluation conversation whose text also occurs in an
    earlier split is dropped, so the splits never share a conversation text."""
    sizes = {"train": n, "calibration": max(1, n // 4) if n_calibration is None else n_calibration,
             "eval": max(1, n // 2) if n_eval is None else n_eval}
    seen: set = set()
    out: dict[str, list[Conversation]] = {split: [] for split in SPLITS}
    for split in SPLITS:
        for code in languages:
            convs = [c for c in generate(sizes[split], seed, split, language_code=code, extra_phrasings=extra_phrasings)
                     if conversation_text(c) not in seen]
            seen |= {conversation_text(c) for c in convs}
            out[split] += convs
    return out


def write_corpus(out: Path, n: int, seed: int = 1, n_eval: Optional[int] = None,
                 n_calibration: Optional[int] = None, languages: Sequence[str] = ("en",)) -> dict:
    """Write the train, calibration and eval splits; returns the manifest (also manifest.json)."""
    out = Path(out)
    manifest = {"generator": "training.grooming_corpus", "seed": seed, "patterns": list(PATTERNS),
                "languages": list(languages), "splits": {}}
    for split, convs in generate_splits(n, seed, n_eval, n_calibration, languages).items():
        msgs = write_jsonl(out / split / "messages.jsonl", (r for c in convs for r in c.records()))
        write_jsonl(out / split / "conversations.jsonl", (c.label_record() for c in convs))
        digest = hashlib.sha256((out / split / "messages.jsonl").read_bytes()).hexdigest()
        manifest["splits"][split] = {
            "conversations": len(convs), "messages": msgs,
            "grooming": sum(c.label == "grooming" for c in convs),
            "families": sorted({c.family for c in convs}), "messages_sha256": digest}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_corpus(directory: Path, split: str) -> list[Conversation]:
    """Read a split written by :func:`write_corpus` back into conversations (sent_at order)."""
    directory = Path(directory) / split
    labels = {}
    with open(directory / "conversations.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            labels[row["conversation_id"]] = row
    convs: dict[str, Conversation] = {}
    with open(directory / "messages.jsonl", encoding="utf-8") as fh:
        for line in fh:
            m = json.loads(line)
            lab = labels[m["conversation_id"]]
            c = convs.setdefault(m["conversation_id"], Conversation(
                m["conversation_id"], lab["label"], lab["family"], bool(lab["participants_minor"]),
                language=str(lab.get("language", "en"))))
            c.messages.append({"sender": m["sender"], "sent_at": m["sent_at"], "text": m["text"],
                               "pattern": m.get("pattern")})
    for c in convs.values():
        c.messages.sort(key=lambda m: m["sent_at"])
    return [convs[k] for k in labels if k in convs]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.grooming_corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--n", type=int, default=2000, help="training conversations (default 2000)")
    p.add_argument("--n-eval", type=int, default=None, help="evaluation conversations (default n/2)")
    p.add_argument("--n-calibration", type=int, default=None, help="calibration conversations (default n/4)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--languages", default="en", help=f"comma-separated language codes (of {','.join(LANGUAGE_CODES)}; "
                                                     "default en)")
    args = p.parse_args(argv)
    languages = [code.strip() for code in args.languages.split(",") if code.strip()]
    unknown = [code for code in languages if code not in LANGUAGES]
    if unknown or not languages:
        print(f"error: --languages: unknown language {(unknown or [''])[0]!r}; one of {', '.join(LANGUAGE_CODES)}",
              file=sys.stderr)
        return 2
    if args.n < 1 or any(v is not None and v < 1 for v in (args.n_eval, args.n_calibration)):
        print("error: --n, --n-eval and --n-calibration must be positive", file=sys.stderr)
        return 2
    manifest = write_corpus(Path(args.out), args.n, args.seed, args.n_eval, args.n_calibration, languages)
    for split, info in manifest["splits"].items():
        print(f"{split}: {info['conversations']} conversations ({info['grooming']} grooming), "
              f"{info['messages']} messages -> {Path(args.out) / split}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
