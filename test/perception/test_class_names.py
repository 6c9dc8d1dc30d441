"""Numeric class ids -> labels from a class_names file (text or YAML)."""

from pathlib import Path

import pytest

from engram_ros.perception.class_names import ClassNames
from engram_ros.perception.class_names import ClassNamesError
from engram_ros.perception.errors import InputRejected

COCO = Path(__file__).resolve().parents[2] / 'config' / 'coco_names.txt'


def test_the_shipped_coco_file_names_its_80_classes():
    names = ClassNames.load(str(COCO))
    assert len(names) == 80
    assert (names.label('0'), names.label('41'), names.label('79')) == \
        ('person', 'cup', 'toothbrush')


@pytest.mark.parametrize('name, text', [
    ('names.txt', 'person\nbicycle\ncup\n\n'),
    ('names.yaml', '- person\n- bicycle\n- cup\n'),
    ('names.yml', '0: person\n1: bicycle\n2: cup\n'),
    ('data.yaml', 'path: ../datasets\nnames:\n  0: person\n  1: bicycle\n  2: cup\n'),
    ('quoted.yaml', "names: {'0': person, '2': cup, '1': bicycle}\n"),
])
def test_text_and_yaml_files_give_the_same_names(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    names = ClassNames.load(str(tmp_path / name))
    assert [names.label(i) for i in ('0', '1', ' 2 ')] == ['person', 'bicycle', 'cup']


def test_ids_not_numbers_and_no_file_leave_labels_as_they_are():
    names = ClassNames.load(str(COCO))
    assert names.label('mug') == 'mug'
    assert ClassNames.load('').label('41') == '41'


def test_a_numeric_id_the_file_does_not_name_is_refused():
    with pytest.raises(InputRejected, match='class id 80 is not in class_names') as info:
        ClassNames.load(str(COCO)).label('80')
    assert info.value.reason == 'unknown_class'


@pytest.mark.parametrize('name, text, message', [
    ('gap.txt', 'person\n\ncup\n', 'line 2 is empty'),
    ('empty.txt', '\n', 'holds no name'),
    ('bad.yaml', 'names: [person, {a: b}]\n', 'not a non-negative id and a name'),
    ('scalar.yaml', 'person\n', 'expected a list of names'),
    ('broken.yaml', 'names: [person\n', 'is not YAML'),
])
def test_a_bad_file_is_refused_with_a_clear_message(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ClassNamesError, match=message):
        ClassNames.load(str(tmp_path / name))


def test_a_missing_file_is_refused():
    with pytest.raises(ClassNamesError, match='cannot be read'):
        ClassNames.load('/nonexistent/names.txt')
