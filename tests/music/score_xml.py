"""What a written MusicXML file says to a reader, parsed with the standard library (no music21)."""

from __future__ import annotations

import dataclasses
import pathlib
import xml.etree.ElementTree as ET


@dataclasses.dataclass
class ScoreXml:
  title: str  # movement-title
  work_title: str
  creators: list[tuple[str, str]]  # (type, text)
  instruments: list[str]  # score-instrument names
  midi_programs: list[int]
  lyrics: list[tuple[str, str]]  # (syllabic, text) in order
  tuplets: list[tuple[int, int]]  # (actual, normal) of every note or rest in a tuplet
  brackets: list[str]  # tuplet start/stop types in order
  implicit_measures: list[str]  # numbers of measures marked implicit="yes"


def read(path: str | pathlib.Path) -> ScoreXml:
  root = ET.parse(str(path)).getroot()
  text = lambda el: (el.text or '') if el is not None else ''
  return ScoreXml(
      title=text(root.find('movement-title')),
      work_title=text(root.find('work/work-title')),
      creators=[(c.get('type', ''), text(c)) for c in root.iter('creator')],
      instruments=[text(i.find('instrument-name')) for i in root.iter('score-instrument')],
      midi_programs=[int(text(p)) for p in root.iter('midi-program')],
      lyrics=[(text(ly.find('syllabic')), text(ly.find('text'))) for ly in root.iter('lyric')],
      tuplets=[(int(text(t.find('actual-notes'))), int(text(t.find('normal-notes'))))
               for t in root.iter('time-modification')],
      brackets=[t.get('type', '') for t in root.iter('tuplet')],
      implicit_measures=[m.get('number', '') for m in root.iter('measure')
                         if m.get('implicit') == 'yes'])
